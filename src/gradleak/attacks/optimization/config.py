"""The configuration of the gradient-matching engine: one frozen dataclass.

Every optimisation recipe (``dlg``, ``idlg``, ``ig``, ``gradinversion``, ...) is a subclass of
:class:`OptimizationConfig` with its paper's defaults; any field can be overridden with
``gl.reconstruct(obs, attack=..., field=value)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gradleak.errors import ConfigError

__all__ = ["OptimizationConfig", "check_int", "check_positive", "finite_number"]


def check_int(name: str, value: Any, minimum: int) -> None:
    """Raises :class:`ConfigError` unless ``value`` is an integer (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_positive(name: str, value: Any) -> None:
    """Raises :class:`ConfigError` unless ``value`` is a finite number > 0."""
    if not finite_number(value) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def finite_number(value: Any) -> bool:
    """A real number (not a bool, not NaN or infinite)."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclass(frozen=True)
class OptimizationConfig:
    """Settings of :class:`~gradleak.attacks.optimization.OptimizationAttack`.

    The dummy batch is optimised in the model's *input* space (after the client's
    normalisation), as in Inverting Gradients' and breaching's code; the box constraint and
    the priors see it mapped back to [0, 1].

    Attributes:
        iterations: optimiser steps (for ``lbfgs`` one step runs up to ``max_iter`` inner
            L-BFGS iterations, as ``torch.optim.LBFGS.step`` does).
        restarts: independent trials run together; the one with the lowest final
            gradient-matching distance is returned.
        lr: step size (the schedule multiplies it).
        optimizer: a name in ``OPTIMIZERS``: ``adam``, ``signed_adam``, ``sgd``,
            ``signed_sgd``, ``lbfgs``.
        optimizer_settings: extra keyword settings of the optimiser (e.g. ``betas`` for
            Adam, ``max_iter``/``history_size`` for L-BFGS, ``momentum`` for SGD).
        schedule: a name in ``SCHEDULES``: ``none``, ``step`` (x0.1 at 3/8, 5/8, 7/8 of the
            iterations, IG), ``cosine``, ``linear``.
        warmup: linear learning-rate warm-up over this many iterations (0: none).
        distance: a name in ``DISTANCES``: ``l2`` (DLG), ``cosine`` (IG, all layers
            jointly), ``cosine_layerwise``, ``l1``.
        layer_weights: ``"uniform"``, ``"linear"``, ``"exp"`` (IG's options) or one weight
            per trainable parameter tensor; a zero drops that tensor from the objective.
        priors: ``{name: weight}`` or ``{name: {"weight": w, **settings}}`` of registered
            priors, evaluated on the [0, 1] images.
        labels: ``"given"`` (the shared labels), ``"joint"`` (DLG's soft labels optimised
            with the images), ``"auto"`` (given if shared, else ``idlg`` for one image, else
            joint; IG's code) or the name of a registered label strategy (``"idlg"``, ...).
        init: a name in ``INITS``: ``randn`` (N(0, 1) in input space), ``rand`` (U(-1, 1)
            in input space), ``zeros``, ``randn_trunc``, ``uniform`` (U(0, 1) pixels),
            ``gray`` (0.5 pixels).
        boxed: clamp the images to [0, 1] after every step (IG).
        langevin: scale of Langevin noise added to the image gradient, ``langevin * lr *
            N(0, 1)`` (GradInversion; 0 disables it).
        keep_best: return, per restart, the iterate with the lowest objective seen (as
            breaching does) rather than the last one (as IG's code does).
        snapshot_every: keep snapshots every this many iterations (None: about 20 over the
            run; 0: none).
        batching: ``"vmap"``: all restarts in one batched computation (checked once per
            run against a per-restart loop, which it falls back to on a mismatch);
            ``"loop"``: one restart after the other (same results to float rounding);
            ``"auto"``: ``loop`` for models with BatchNorm on CPU (there the batched
            grouped convolutions and the composite BN that vmap needs were measured slower
            than a loop: ConvNet width 16, 4 restarts, 0.83x vs 1.06x breaching's speed),
            else ``vmap`` (LeNet, 4 restarts: 1.93x vs 1.53x).
        grad_scale: factor on the gradient-matching distance (priors' weights are relative to
            it; with Adam only the balance of the terms and the Langevin noise see it).
        normalize_distance: divide each restart's matching term by its value at the start
            of the stage, so that prior weights are relative to the starting mismatch and
            carry over between models whose gradient scales differ by orders of magnitude
            (restarts are still scored by the raw distance).
        adaptive: apply the attacker's surrogate of the client's declared defense
            (:mod:`gradleak.defenses.adaptive`: clipping, pruning masks, straight-through
            sign / quantisation, DP-SGD's expected clipped update) to every simulated update
            before matching (an adaptive attack, as GGL's; Li et al., CVPR 2022).
        compile: compile the simulated update with ``torch.compile`` (2.5-3.5x faster steps
            on CPU; the first call compiles for about 5-30 s, paid once per observation and
            setting in a process; falls back to eager on failure). ``"auto"`` compiles on
            CPU when the run's estimated eager time exceeds a minute (decided from the
            model's FLOPs and the iteration count, see
            :mod:`~gradleak.attacks.optimization.compilation`).
        then: further pixel stages run after the recipe's own, each a mapping of overrides
            of this config (plain or dotted keys, as ``gl.reconstruct``'s) that starts from
            the previous stage's chosen restart with a fresh optimiser; the last stage's
            result is returned unless the recipe chooses otherwise. The annealed prior of
            the ``defense-curves`` study is ``iterations=1500, then=({"iterations": 500,
            "lr": 0.01, "priors.tv.weight": 0.005},)``: the prior guides the search, then
            is relaxed so that gradient matching sets the details. ``labels`` and ``then``
            cannot change between stages.
    """

    iterations: int = 1000
    restarts: int = 1
    lr: float = 0.1
    optimizer: str = "adam"
    optimizer_settings: Mapping[str, Any] = field(default_factory=dict)
    schedule: str = "none"
    warmup: int = 0
    distance: str = "cosine"
    layer_weights: str | tuple[float, ...] = "uniform"
    priors: Mapping[str, Any] = field(default_factory=dict)
    labels: str = "given"
    init: str = "randn"
    boxed: bool = True
    langevin: float = 0.0
    keep_best: bool = False
    snapshot_every: int | None = None
    batching: str = "auto"
    compile: bool | str = "auto"
    grad_scale: float = 1.0
    normalize_distance: bool = False
    adaptive: bool = False
    then: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # imported here: the registries import nothing from this module, but keep the
        # dataclass importable on its own
        from gradleak.attacks.optimization.distances import DISTANCES, LAYER_WEIGHTS
        from gradleak.attacks.optimization.inits import INITS
        from gradleak.attacks.optimization.labelmodes import known_label_mode
        from gradleak.attacks.optimization.optimizers import OPTIMIZERS
        from gradleak.attacks.optimization.schedules import SCHEDULES

        check_int("iterations", self.iterations, 1)
        check_int("restarts", self.restarts, 1)
        check_int("warmup", self.warmup, 0)
        if self.snapshot_every is not None:
            check_int("snapshot_every", self.snapshot_every, 0)
        if not finite_number(self.lr) or not self.lr > 0:
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if not finite_number(self.langevin) or self.langevin < 0:
            raise ConfigError(f"langevin must be a finite number >= 0, got {self.langevin!r}")
        if not finite_number(self.grad_scale) or not self.grad_scale > 0:
            raise ConfigError(f"grad_scale must be a positive number, got {self.grad_scale!r}")
        for fname, reg in (
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("distance", DISTANCES),
            ("init", INITS),
        ):
            value = getattr(self, fname)
            if value not in reg:
                raise ConfigError(
                    f"unknown {fname} {value!r}; available: {', '.join(reg.available())}"
                )
        lw = self.layer_weights
        if isinstance(lw, str):
            if lw not in LAYER_WEIGHTS:
                raise ConfigError(
                    f"unknown layer_weights {lw!r}; use one of "
                    f"{', '.join(LAYER_WEIGHTS.available())} or a tuple of floats"
                )
        else:
            try:
                vals = [float(v) for v in lw]
            except (TypeError, ValueError):
                raise ConfigError("layer_weights must be a name or a sequence of numbers") from None
            if not all(math.isfinite(v) and v >= 0 for v in vals) or not any(v > 0 for v in vals):
                raise ConfigError(
                    "layer_weights must be finite and >= 0 with at least one positive"
                )
            object.__setattr__(self, "layer_weights", tuple(vals))
        for flag in ("normalize_distance", "adaptive"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        if self.batching not in ("auto", "vmap", "loop"):
            raise ConfigError(f"batching must be 'auto', 'vmap' or 'loop', got {self.batching!r}")
        if self.compile not in (True, False, "auto"):
            raise ConfigError(f"compile must be True, False or 'auto', got {self.compile!r}")
        if not isinstance(self.priors, Mapping):
            raise ConfigError("priors must be a mapping {name: weight or settings}")
        if not isinstance(self.optimizer_settings, Mapping):
            raise ConfigError("optimizer_settings must be a mapping")
        self._check_then()
        if not known_label_mode(self.labels):
            from gradleak.attacks.optimization.labelmodes import label_mode_names

            raise ConfigError(
                f"unknown labels setting {self.labels!r}; use one of "
                f"{', '.join(label_mode_names())}"
            )

    def _check_then(self) -> None:
        """``then`` is a sequence of override mappings that each give a valid config."""
        then = self.then
        if isinstance(then, Mapping) or not isinstance(then, tuple | list):
            raise ConfigError("then must be a list of override mappings, e.g. "
                              "[{'iterations': 500, 'lr': 0.01}]")
        object.__setattr__(self, "then", tuple(dict(t) if isinstance(t, Mapping) else t
                                               for t in then))
        for i, entry in enumerate(self.then):
            if not isinstance(entry, dict):
                raise ConfigError(f"then[{i}] must be a mapping of settings, got {entry!r}")
            fixed = sorted({k.split(".")[0] for k in entry} & {"then", "labels"})
            if fixed:
                raise ConfigError(f"then[{i}] cannot change {', '.join(fixed)} (set it on "
                                  "the attack itself)")
        self.stage_configs()

    def stage_configs(self) -> list[OptimizationConfig]:
        """The config of each ``then`` stage (validated: a bad entry raises ConfigError)."""
        from gradleak.config import with_overrides

        if not self.then:
            return []
        base = dataclasses.replace(self, then=())
        return [with_overrides(base, f"then[{i}]", **entry)
                for i, entry in enumerate(self.then)]
