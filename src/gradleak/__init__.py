"""gradleak: measure what federated-learning updates leak.

Example:
    >>> import gradleak as gl
    >>> model = gl.models.create("lenet", num_classes=10)
    >>> images, labels = gl.data.load("sample", size=32, n=1, seed=0)
    >>> obs, truth = gl.simulate(model, images, labels)
    >>> rec = gl.reconstruct(obs, attack="idlg", iterations=300)    # doctest: +SKIP
    >>> gl.evaluate(rec, truth)["psnr"]                             # doctest: +SKIP

Subpackages and heavy functions load on first use (PEP 562), so ``import gradleak`` is fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from gradleak.errors import (
    ConfigError,
    DataError,
    GradleakError,
    ObservationError,
    RegistryError,
    ThreatModelError,
)
from gradleak.run import RunResult, RunSpec, run
from gradleak.simulate import simulate
from gradleak.types import GroundTruth, Normalization, Observation, Reconstruction, Trace

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "reconstruct": "gradleak.attacks:reconstruct",
    "evaluate": "gradleak.metrics:evaluate",
    "recover_labels": "gradleak.labels:recover_labels",
    "attacks": "gradleak.attacks",
    "models": "gradleak.models",
    "data": "gradleak.data",
    "metrics": "gradleak.metrics",
    "priors": "gradleak.priors",
    "labels": "gradleak.labels",
    "defenses": "gradleak.defenses",
    "report": "gradleak.report",
    "experiments": "gradleak.experiments",
    "learned": "gradleak.learned",
    "generative": "gradleak.generative",
    "schema": "gradleak.schema",
    "threads": "gradleak.threads",
}

__all__ = [
    "ConfigError",
    "DataError",
    "GradleakError",
    "GroundTruth",
    "Normalization",
    "Observation",
    "ObservationError",
    "Reconstruction",
    "RegistryError",
    "RunResult",
    "RunSpec",
    "ThreatModelError",
    "Trace",
    "__version__",
    "run",
    "simulate",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'gradleak' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    if attr:
        # importing the attacks package registers every attack (and labels/priors with it)
        importlib.import_module("gradleak.attacks")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
