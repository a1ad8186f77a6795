"""Experiments (studies from the papers, runnable by name); modules register on import."""

from gradleak.experiments import (  # noqa: F401  (registration)
    batch_discard,
    defense_curves,
    demo,
)
from gradleak.experiments.base import EXPERIMENTS, available, register_experiment, run_experiment

__all__ = ["EXPERIMENTS", "available", "register_experiment", "run_experiment"]
