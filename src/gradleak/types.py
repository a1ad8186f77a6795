"""The data that flows through gradleak: Observation -> attack -> Reconstruction -> evaluate.

* :class:`Observation` is everything an honest-but-curious server legitimately holds.
* :class:`GroundTruth` is the client's private batch; only :func:`gradleak.evaluate` sees it.
* :class:`Reconstruction` is what an attack returns, with a :class:`Trace` of how it got there.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from gradleak.errors import DataError, ObservationError
from gradleak.schema import DEFAULT_LIMITS, Float, Int, Limits, Str, check

UpdateKind = Literal["gradient", "delta"]
OBSERVATION_FORMAT = "gradleak.observation/1"


@dataclass(frozen=True)
class Normalization:
    """Per-channel normalisation ``(x - mean) / std`` applied before the model sees [0,1] data."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ObservationError("normalization mean and std need one value per channel")
        for i, (m, s) in enumerate(zip(self.mean, self.std, strict=True)):
            check(Float(), m, f"normalization.mean[{i}]", error=ObservationError)
            check(Float(0.0, lo_open=True), s, f"normalization.std[{i}]",
                  error=ObservationError)

    def apply(self, x: Tensor) -> Tensor:
        """Normalises a (..., C, H, W) tensor."""
        shape = (len(self.mean), 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return (x - mean) / std


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The (name, parameter) pairs a client trains, in ``named_parameters`` order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def check_model_finite(model: nn.Module) -> None:
    """Raises :class:`ObservationError` naming the first parameter or buffer with NaN/inf."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ObservationError(
                f"model tensor {name!r} contains NaN or inf; the model is corrupt "
                "(check how it was trained or loaded)"
            )


def _check_json(where: str, value: Any, depth: int = 0) -> None:
    """Refuses anything but JSON data (str keys, finite numbers, short nesting)."""
    if depth > 8:
        raise ObservationError(f"{where} is nested too deeply")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ObservationError(f"{where} keys must be strings")
            _check_json(f"{where}.{k}", v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_json(where, v, depth + 1)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ObservationError(f"{where} must be a finite number")
    elif not (value is None or isinstance(value, str | int | bool)):
        raise ObservationError(f"{where} must hold JSON data, not {type(value).__name__}")
    if depth == 0 and not isinstance(value, dict):
        raise ObservationError(f"{where} must be a JSON object")


@dataclass(frozen=True)
class Observation:
    """What the server sees of one client in one round.

    Attributes:
        model: the model as the server sent it (architecture, parameters, buffers).
        update: per trainable parameter, the gradient (FedSGD) or the parameter delta
            ``after - before`` (FedAvg), in ``named_parameters`` order.
        kind: ``"gradient"`` or ``"delta"``.
        param_names: the names of the parameters in ``update``.
        data_shape: (C, H, W) of one input.
        num_classes: number of output classes.
        batch_size: the client's batch size if it is shared, else None.
        labels: the labels if the client shares them, else None.
        normalization: how [0,1] images are normalised before the model, or None.
        local_steps: SGD steps the client took (1 for FedSGD).
        local_lr: the client's learning rate (FedAvg).
        local_batch_size: mini-batch size of the local steps (None: the full batch).
        loss: the registered name of the training loss (see :mod:`gradleak.losses`).
        train_mode: whether the client ran the model in training mode (BN batch statistics).
        defense: the defense the client claims to apply (a description), or None.
        defense_report: JSON facts the client reports about its defense (e.g. the DP-SGD
            ``epsilon`` and ``delta`` that Opacus' accountant gives, layers it replaced), or
            None.
        model_spec: how to rebuild the model from the zoo (name and kwargs), if known.
    """

    model: nn.Module
    update: tuple[Tensor, ...]
    kind: UpdateKind
    param_names: tuple[str, ...]
    data_shape: tuple[int, int, int]
    num_classes: int
    batch_size: int | None = None
    labels: Tensor | None = None
    normalization: Normalization | None = None
    local_steps: int = 1
    local_lr: float = 0.1
    local_batch_size: int | None = None
    loss: str = "cross_entropy"
    train_mode: bool = True
    defense: str | None = None
    defense_report: dict[str, Any] | None = None
    model_spec: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._check_settings()
        check_model_finite(self.model)
        params = trainable_parameters(self.model)
        if len(params) != len(self.update):
            raise ObservationError(
                f"the update has {len(self.update)} tensors but the model has {len(params)} "
                "trainable parameters; pass the model the gradients were computed on"
            )
        for (name, p), u, given in zip(params, self.update, self.param_names, strict=False):
            if name != given or p.shape != u.shape:
                raise ObservationError(
                    f"update tensor {given!r} {tuple(u.shape)} does not match model parameter "
                    f"{name!r} {tuple(p.shape)}; pass the model the gradients were computed on"
                )
            if u.dtype != p.dtype:
                raise ObservationError(
                    f"update tensor {name!r} is {u.dtype} but the model parameter is {p.dtype}; "
                    "convert the update or the model so that both use the same precision"
                )
            if not torch.isfinite(u).all():
                raise ObservationError(
                    f"update tensor {name!r} contains NaN or inf; the client update is corrupt"
                )
        if self.labels is not None:
            lab = self.labels
            if not isinstance(lab, Tensor) or lab.dim() != 1 or lab.dtype not in (
                torch.int64, torch.int32
            ):
                got = f"{lab.dtype} {tuple(lab.shape)}" if isinstance(lab, Tensor) else type(lab)
                raise ObservationError(f"labels must be a 1-D integer tensor, got {got}")
            if len(lab) and (int(lab.min()) < 0 or int(lab.max()) >= self.num_classes):
                raise ObservationError(f"labels must lie in [0, {self.num_classes})")
            if self.batch_size is not None and len(lab) != self.batch_size:
                raise ObservationError("labels and batch_size disagree")

    def _check_settings(self) -> None:
        """Types and ranges of the scalar fields (no bools for ints, no NaN or strings)."""
        if not isinstance(self.model, nn.Module):
            raise ObservationError("model must be a torch.nn.Module")
        if not isinstance(self.update, tuple) or not all(
            isinstance(u, Tensor) for u in self.update
        ):
            raise ObservationError("update must be a tuple of tensors")
        big = 2**62
        if not isinstance(self.data_shape, tuple) or len(self.data_shape) != 3:
            raise ObservationError(f"data_shape must be (C, H, W), got {self.data_shape!r}")
        for i, v in enumerate(self.data_shape):
            check(Int(1, big), v, f"data_shape[{i}]", error=ObservationError)
        check(Str(choices=("gradient", "delta")), self.kind, "kind", error=ObservationError)
        check(Int(1, big), self.num_classes, "num_classes", error=ObservationError)
        for name in ("batch_size", "local_batch_size"):
            if getattr(self, name) is not None:
                check(Int(1, big), getattr(self, name), name, error=ObservationError)
        check(Int(1, big), self.local_steps, "local_steps", error=ObservationError)
        check(Float(0.0, lo_open=True), self.local_lr, "local_lr", error=ObservationError)
        check(Str(), self.loss, "loss", error=ObservationError)
        if not isinstance(self.train_mode, bool):
            raise ObservationError(f"train_mode must be True or False, got {self.train_mode!r}")
        if self.defense_report is not None:
            _check_json("defense_report", self.defense_report)

    # ------------------------------------------------------------------ convenience
    @property
    def gradients(self) -> tuple[Tensor, ...]:
        """The FedSGD gradient; for a FedAvg delta, raises (use ``update``)."""
        if self.kind != "gradient":
            raise ObservationError(
                "this observation holds a FedAvg parameter delta, not a gradient"
            )
        return self.update

    def named_update(self) -> dict[str, Tensor]:
        """``{parameter name: update tensor}``."""
        return dict(zip(self.param_names, self.update, strict=True))

    def normalize(self, x: Tensor) -> Tensor:
        """Applies the client's normalisation to [0,1] images (identity if none)."""
        return x if self.normalization is None else self.normalization.apply(x)

    def model_copy(self) -> nn.Module:
        """A deep copy of the model, safe for an attack to modify."""
        return copy.deepcopy(self.model)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Saves to a folder: ``tensors.safetensors`` (model state + update) and ``meta.json``.

        No pickle is used. A model outside the zoo must be passed again to :meth:`load`.
        """
        from gradleak.observation_files import write_observation

        return write_observation(self, Path(path))

    @classmethod
    def load(
        cls, path: str | Path, model: nn.Module | None = None, *, limits: Limits | None = None
    ) -> Observation:
        """Loads an observation saved by :meth:`save`, treating the files as untrusted.

        Every field of ``meta.json`` is checked against :func:`gradleak.schema.
        observation_meta_schema` and a zoo model is sized on the ``meta`` device before it
        is built, so a tampered file fails with a :class:`DataError` naming the field.

        Args:
            path: the folder written by :meth:`save`.
            model: the model architecture (its weights are overwritten with the saved ones);
                needed when the model is not from the zoo.
            limits: resource ceilings (:class:`gradleak.schema.Limits`); raise
                ``max_parameters`` explicitly to load a model larger than 100 M parameters.
        """
        from gradleak.observation_files import read_observation

        return read_observation(cls, Path(path), model, limits or DEFAULT_LIMITS)


@dataclass(frozen=True)
class GroundTruth:
    """The client's private batch: images in [0,1] (N, C, H, W) and labels (N,).

    Only :func:`gradleak.evaluate` reads it; an attack never does.
    """

    images: Tensor
    labels: Tensor


@dataclass
class Trace:
    """How a reconstruction was reached.

    Attributes:
        losses: objective per logged iteration, one column per restart (iterations, R).
        snapshot_iterations: the iterations at which ``snapshots`` were taken.
        snapshots: the images of the chosen restart at those iterations, each (N, C, H, W).
        restart_scores: the final gradient-matching loss of every restart (lower is better).
        best_restart: index of the chosen restart.
        wall_time: seconds the attack took.
    """

    losses: list[list[float]] = field(default_factory=list)
    snapshot_iterations: list[int] = field(default_factory=list)
    snapshots: list[Tensor] = field(default_factory=list)
    restart_scores: list[float] = field(default_factory=list)
    best_restart: int = 0
    wall_time: float = 0.0


@dataclass(frozen=True)
class Reconstruction:
    """An attack's output.

    Attributes:
        images: reconstructed images in [0,1], (N, C, H, W).
        labels: recovered labels (N,), or None if the attack does not produce them.
        attack: the registered attack name.
        config: the full config used (JSON-friendly).
        trace: the optimisation trace (empty for closed-form attacks).
        extras: attack-specific reports (rank analysis, per-sample success, ...).
        expected: how many private images the attack believes the batch holds (the shared
            or recovered batch size), or None when it does not know. When it exceeds
            ``len(images)`` the result is *partial*: the attack found only some images and
            :func:`gradleak.evaluate` scores those and counts the rest as missed.

    Example:
        >>> rec = Reconstruction(torch.rand(3, 1, 4, 4), None, attack="x", config={},
        ...                      expected=5)
        >>> rec.partial, rec.missing
        (True, 2)
    """

    images: Tensor
    labels: Tensor | None
    attack: str
    config: dict[str, Any]
    trace: Trace = field(default_factory=Trace)
    extras: dict[str, Any] = field(default_factory=dict)
    expected: int | None = None

    def __post_init__(self) -> None:
        if self.expected is not None:
            if isinstance(self.expected, bool) or not isinstance(self.expected, int):
                raise DataError(f"Reconstruction.expected must be an int, not {self.expected!r}")
            if self.expected < len(self.images):
                raise DataError(
                    f"a reconstruction of {len(self.images)} images cannot expect fewer "
                    f"({self.expected}); an attack returns at most one image per private image"
                )

    @property
    def found(self) -> int:
        """Number of reconstructed images."""
        return int(self.images.shape[0])

    @property
    def missing(self) -> int:
        """Private images the attack expected but did not recover (0 when unknown)."""
        return 0 if self.expected is None else self.expected - self.found

    @property
    def partial(self) -> bool:
        """True when fewer images were recovered than the batch holds."""
        return self.missing > 0


class Stopwatch:
    """Context manager measuring wall time in seconds (``.elapsed``)."""

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self._t0
