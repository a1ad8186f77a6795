"""The one run function: spec -> simulate -> reconstruct -> evaluate -> artefacts.

:func:`run` is the glue every entry point shares: ``gradleak attack`` (the CLI only parses
its options into a :class:`RunSpec` and prints the :class:`RunResult`), the demo, the
experiments, and later sweeps and the Flower audit. :func:`attack_observation` is its second
half, for callers that already hold an observation (e.g. two attacks on one update).

Example:
    >>> import gradleak as gl
    >>> spec = gl.RunSpec(model="lenet", attack="idlg", n=1,
    ...                   overrides={"iterations": 50}, out=None)
    >>> result = gl.run(spec)                                     # doctest: +SKIP
    >>> result.scores["psnr"], result.index                       # doctest: +SKIP
    (11.3, None)

The Python side uses torch's thread setting as it finds it unless ``threads`` is given; for
the small models of the zoo on a shared machine, ``threads=1`` is usually much faster.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from gradleak.errors import ConfigError, DataError, GradleakError
from gradleak.safeio import check_out_dir
from gradleak.types import GroundTruth, Observation, Reconstruction

if TYPE_CHECKING:  # the attacks package is imported on first use (import gradleak stays fast)
    from gradleak.attacks.base import Callback


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs; validated when it is built (before any work).

    Attributes:
        model: a zoo name (``gradleak.models.available()``) or an ``nn.Module``.
        model_kwargs: settings of a zoo model (e.g. ``{"width": 16}``).
        num_classes: outputs of a zoo model (None: 10, or enough for the labels).
        model_seed: seed of a zoo model's initial weights (None: torch's global RNG).
        data: a dataset name (``gradleak.data.available()``) or an image folder; ignored
            when ``images`` are given.
        data_root: local folder of a dataset read from disk (CIFAR, MNIST...).
        n: images in the client's batch (the data source's ``n``).
        size: image side length in pixels.
        data_options: extra settings of ``gradleak.data.load`` (e.g. ``unique_labels``).
        images: the private batch itself, (N, C, H, W) in [0, 1] (then ``labels`` too).
        labels: its labels (N,).
        attack: a registered attack (``gradleak.attacks.available()``).
        overrides: fields of the attack's config, by the rule of :mod:`gradleak.config`
            (``{"priors.tv.weight": 0.1}`` changes one entry, ``{"priors": {}}`` replaces).
        defense: the client's defense (a name, ``{"name": ..., **settings}`` or None).
        local_steps: client SGD steps (1: FedSGD gradient; > 1: FedAvg delta).
        local_lr: client learning rate.
        share_labels: whether the server is told the labels.
        simulate_options: further keywords of ``gradleak.simulate`` (``normalization``...).
        seed: seed of data choice, defense noise and the attack.
        attack_seed: the attack's seed when it should differ from ``seed``.
        threads: torch CPU threads during the run (restored afterwards; None: unchanged).
        out: the run folder to write (``gradleak.report.write_run``), or None for no files.
        title: the report's title (default: "ATTACK on MODEL, batch N").
        notes: extra run settings stored in the report's ``config.json``.
    """

    model: str | nn.Module = "lenet"
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    model_seed: int | None = None
    data: str | Path = "sample"
    data_root: str | Path | None = None
    n: int = 1
    size: int = 32
    data_options: Mapping[str, Any] = field(default_factory=dict)
    images: Tensor | None = None
    labels: Tensor | None = None
    attack: str = "ig"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    defense: Any = None
    local_steps: int = 1
    local_lr: float = 0.1
    share_labels: bool = False
    simulate_options: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    attack_seed: int | None = None
    threads: int | None = None
    out: str | Path | None = None
    title: str | None = None
    notes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from gradleak.attacks import create as create_attack
        from gradleak.defenses import create as create_defense
        from gradleak.models import MODELS

        if self.out is not None and not isinstance(self.out, Path):
            object.__setattr__(self, "out", Path(self.out))
        if self.data_root is not None and not isinstance(self.data_root, Path):
            object.__setattr__(self, "data_root", Path(self.data_root))

        if isinstance(self.model, str):
            MODELS.get(self.model)  # unknown names fail before any work
        elif not isinstance(self.model, nn.Module):
            raise ConfigError("model must be a zoo name or a torch.nn.Module")
        if (self.images is None) != (self.labels is None):
            raise ConfigError("give images and labels together (or neither, to load data)")
        if self.images is None and (not isinstance(self.n, int) or self.n < 1):
            raise ConfigError(f"n (the batch size) must be a positive integer, not {self.n!r}")
        if not isinstance(self.local_steps, int) or self.local_steps < 1:
            raise ConfigError(f"local_steps must be an integer >= 1, not {self.local_steps!r}")
        if not math.isfinite(float(self.local_lr)) or float(self.local_lr) <= 0:
            raise ConfigError(f"local_lr must be a positive finite number, not {self.local_lr!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, not {self.threads!r}")
        if self.defense is not None and isinstance(self.defense, Mapping | str):
            spec = {"name": self.defense} if isinstance(self.defense, str) else self.defense
            create_defense(**spec)
        create_attack(self.attack, **dict(self.overrides))  # unknown/invalid fields fail

    @property
    def model_name(self) -> str:
        """The zoo name, or the class name of a custom module."""
        return self.model if isinstance(self.model, str) else type(self.model).__name__

    def settings(self) -> dict[str, Any]:
        """The JSON-friendly run settings stored in ``config.json``."""
        return {
            "model": self.model_name, "model_opts": dict(self.model_kwargs),
            "attack": self.attack, "overrides": dict(self.overrides),
            "batch_size": self.n if self.images is None else len(self.images),
            "data": str(self.data) if self.images is None else "tensors",
            "data_root": str(self.data_root) if self.data_root else None, "size": self.size,
            "seed": self.seed, "share_labels": self.share_labels,
            "local_steps": self.local_steps, "local_lr": self.local_lr,
            "defense": self.defense if not hasattr(self.defense, "describe")
            else self.defense.describe(), "threads": self.threads,
            **dict(self.notes),
        }


@dataclass(frozen=True)
class RunResult:
    """What a run produced.

    Attributes:
        observation: what the server saw.
        truth: the client's private batch (for scoring and reports only).
        reconstruction: the attack's output.
        scores: ``gradleak.evaluate(reconstruction, truth)``.
        wall_time: seconds the attack took.
        index: the run folder's ``index.html`` (None when nothing was written).
        config: the run settings (as stored in ``config.json``).
    """

    observation: Observation
    truth: GroundTruth
    reconstruction: Reconstruction
    scores: Any
    wall_time: float
    index: Path | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def psnr(self) -> float:
        """Mean PSNR (dB) of the matched reconstruction."""
        return float(self.scores["psnr"])

    @property
    def ssim(self) -> float:
        """Mean SSIM of the matched reconstruction."""
        return float(self.scores["ssim"])


@contextmanager
def torch_threads(threads: int | None) -> Any:
    """Sets torch's CPU thread count for the block (None: unchanged); restores it after."""
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(saved)


def load_images(spec: RunSpec) -> tuple[Tensor, Tensor]:
    """The private batch of ``spec``: its tensors, a registered dataset, or an image folder.

    Raises:
        DataError: ``data`` is neither a dataset name nor an existing folder.
    """
    import gradleak.data as gdata

    if spec.images is not None and spec.labels is not None:
        return spec.images, spec.labels
    data = str(spec.data)
    opts = dict(spec.data_options)
    if data in gdata.available():
        return gdata.load(data, size=spec.size, n=spec.n, seed=spec.seed, root=spec.data_root,
                          **opts)
    looks_like_path = os.sep in data or data.startswith(".") or Path(data).exists()
    if not looks_like_path:
        raise DataError(f"unknown dataset {data!r}; use one of {', '.join(gdata.available())} "
                        "or a path to an image folder")
    if not Path(data).is_dir():
        raise DataError(f"data path {data!r} does not exist or is not a folder")
    return gdata.load("imagefolder", size=spec.size, n=spec.n, seed=spec.seed, root=Path(data),
                      **opts)


def image_shape(images: Tensor) -> tuple[int, int, int]:
    """``(C, H, W)`` of a batch of images (N, C, H, W)."""
    if images.dim() != 4:
        raise DataError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    c, h, w = (int(v) for v in images.shape[1:])
    return c, h, w


def build_model(spec: RunSpec, images: Tensor, labels: Tensor) -> nn.Module:
    """The client's model: ``spec.model`` itself, or the zoo model it names.

    Raises:
        ConfigError: the zoo model cannot be built with ``spec.model_kwargs``.
    """
    from gradleak.models import create as create_model

    if isinstance(spec.model, nn.Module):
        return spec.model
    classes = spec.num_classes or max(10, int(labels.max()) + 1)
    kwargs = dict(spec.model_kwargs)
    if spec.model_seed is not None:
        kwargs["seed"] = spec.model_seed
    try:
        return create_model(spec.model, num_classes=classes, in_shape=image_shape(images),
                            **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        if isinstance(exc, GradleakError):
            raise
        raise ConfigError(f"model {spec.model!r} cannot be built with settings "
                          f"{dict(spec.model_kwargs)}: {exc}") from None


def attack_observation(
    obs: Observation,
    truth: GroundTruth,
    *,
    attack: str,
    overrides: Mapping[str, Any] | None = None,
    seed: int = 0,
    callback: Callback | None = None,
    out: str | Path | None = None,
    title: str | None = None,
    config: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
) -> RunResult:
    """Reconstructs from ``obs``, scores against ``truth`` and writes the run folder.

    Args:
        obs: what the server saw.
        truth: the private batch (only ``evaluate`` and the report see it).
        attack: a registered attack; ``overrides`` its config fields.
        overrides: config fields of the attack (the rule of :mod:`gradleak.config`).
        seed: the attack's seed.
        callback: receives the attack's progress.
        out: the run folder (None: no files); checked writable before the attack.
        title: the report's title.
        config: the run settings stored in ``config.json``.
        num_classes: passed to ``evaluate`` (label-count scores over this many classes).

    Returns:
        A :class:`RunResult`.
    """
    from gradleak.attacks import reconstruct
    from gradleak.metrics import evaluate
    from gradleak.report.run import write_run

    if out is not None:
        check_out_dir(out)  # fail before the attack, not after it
    extra = dict(overrides or {})
    t0 = time.perf_counter()
    rec = reconstruct(obs, attack=attack, seed=seed, callback=callback, **extra)
    wall = time.perf_counter() - t0
    scores = evaluate(rec, truth, num_classes=num_classes)
    settings = dict(config or {"attack": attack, "overrides": extra, "seed": seed})
    index = None
    if out is not None:
        index = write_run(out, rec, truth, scores, config=settings,
                          title=title or f"{attack}, batch {len(truth.images)}")
    return RunResult(observation=obs, truth=truth, reconstruction=rec, scores=scores,
                     wall_time=wall, index=index, config=settings)


def run(spec: RunSpec, *, callback: Callback | None = None) -> RunResult:
    """Simulates a client, attacks its update, scores the result and writes the run folder.

    Args:
        spec: the run (validated when it was built).
        callback: receives the attack's progress (e.g. a progress bar).

    Returns:
        A :class:`RunResult` with the observation, reconstruction, scores and ``index.html``.

    Example:
        >>> import gradleak as gl
        >>> res = gl.run(gl.RunSpec(model="mlp", attack="bias", out=None))   # doctest: +SKIP
        >>> res.psnr                                                          # doctest: +SKIP
        inf
    """
    from gradleak.simulate import simulate

    if spec.out is not None:
        check_out_dir(spec.out)  # a file, a symlink or an unwritable folder fails before work
    with torch_threads(spec.threads):
        images, labels = load_images(spec)
        model = build_model(spec, images, labels)
        obs, truth = simulate(model, images, labels, defense=spec.defense,
                              local_steps=spec.local_steps, local_lr=spec.local_lr,
                              share_labels=spec.share_labels, seed=spec.seed,
                              **dict(spec.simulate_options))
        settings = spec.settings()
        settings["num_classes"] = obs.num_classes
        title = spec.title or f"{spec.attack} on {spec.model_name}, batch {len(images)}"
        return attack_observation(
            obs, truth, attack=spec.attack, overrides=spec.overrides,
            seed=spec.seed if spec.attack_seed is None else spec.attack_seed,
            callback=callback, out=spec.out, title=title, config=settings)
