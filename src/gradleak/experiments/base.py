"""Runnable studies, registered by name: ``gradleak experiment NAME``.

An experiment is a function ``run(out: Path, *, quick: bool = False, seed: int = 0,
**settings) -> Path`` that writes its results (JSON, plots, an ``index.html``) under ``out``
and returns the path of the HTML page. ``quick`` shrinks it to a smoke-test size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from gradleak.registry import Registry
from gradleak.safeio import check_out_dir


class Experiment(Protocol):
    """The signature every registered experiment has."""

    def __call__(self, out: Path, *, quick: bool = False, seed: int = 0, **settings: Any) -> Path:
        ...


EXPERIMENTS: Registry[Experiment] = Registry("experiment")
register_experiment = EXPERIMENTS.register


def run_experiment(name: str, out: str | Path, **kwargs: Any) -> Path:
    """Runs the experiment ``name``, writing under ``out``; returns its HTML page."""
    path = check_out_dir(out)
    return EXPERIMENTS.get(name)(path, **kwargs)


def available() -> list[str]:
    """Names of the registered experiments."""
    return EXPERIMENTS.available()
