"""Defenses a client applies: the base class, declared parameter ranges and the registry.

A defense is a registered frozen dataclass with keyword settings; ``create(name, **settings)``
builds one and refuses unknown, out-of-range or NaN settings with a :class:`ConfigError`.
Defenses act at different places of the client's computation (``stage``):

* ``update``: a transform of the finished update (:meth:`Defense.apply`): clip, noise, prune...
* ``training``: inside the client's per-sample computation (DP-SGD through Opacus).
* ``representation``: on the gradient of one layer during each local step (Soteria).
* ``data``: on the private batch before training (MixUp, InstaHide).
* ``model``: a wrapper of the model the federation trains (PRECODE).
* ``aggregation``: over several simulated clients (secure aggregation).

:func:`gradleak.defenses.client.run_client` runs a defense's hooks around the client's
training; :mod:`gradleak.simulate` calls it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from gradleak.errors import ConfigError
from gradleak.registry import Registry

Stage = Literal["update", "training", "representation", "data", "model", "aggregation"]


@dataclass(frozen=True)
class Interval:
    """The allowed values of one numeric setting (NaN and inf are always refused).

    Attributes:
        low: the lower bound (None: unbounded).
        high: the upper bound (None: unbounded).
        low_open: whether ``low`` itself is excluded.
        high_open: whether ``high`` itself is excluded.
        integer: whether the value must be an integer.
        optional: whether None is allowed.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    optional: bool = False

    def describe(self) -> str:
        """The interval in mathematical notation, e.g. ``(0, 1]``."""
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        kind = "an integer in " if self.integer else ""
        return f"{kind}{left}{lo}, {hi}{right}" + (" or None" if self.optional else "")

    def check(self, owner: str, name: str, value: Any) -> None:
        """Raises :class:`ConfigError` unless ``value`` lies in the interval."""
        if value is None and self.optional:
            return
        bad = isinstance(value, bool) or not isinstance(value, int | float)
        if not bad and self.integer and not float(value).is_integer():
            bad = True
        if not bad and not math.isfinite(float(value)):
            bad = True
        if not bad:
            v = float(value)
            if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
                bad = True
            if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
                bad = True
        if bad:
            raise ConfigError(
                f"defense {owner!r}: {name}={value!r} is invalid; {name} must be "
                f"{self.describe()}"
            )


def check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raises :class:`ConfigError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(
            f"defense {owner!r}: {name}={value!r} is invalid; choose one of {list(choices)}"
        )


class Defense:
    """Base class of every defense: declared ranges, the client-side hooks and a description.

    Subclasses are frozen dataclasses. ``ranges`` maps numeric settings to their
    :class:`Interval`; ``__post_init__`` checks them (a subclass with more checks overrides
    :meth:`validate` and calls ``super().validate()``). The hooks below default to "do
    nothing"; a defense overrides the ones of its ``stage``.
    """

    name: ClassVar[str] = "defense"
    stage: ClassVar[Stage] = "update"
    ranges: ClassVar[Mapping[str, Interval]] = {}

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Checks every setting against :attr:`ranges`."""
        for key, interval in self.ranges.items():
            interval.check(self.name, key, getattr(self, key))

    # ------------------------------------------------------------------ hooks
    def prepare_model(self, model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
        """The model the federation trains under this defense (a copy) and what changed."""
        return model, {}

    def transform_batch(
        self, images: Tensor, targets: Tensor, *, num_classes: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """The batch the client trains on: images in [0, 1], targets (indices or (B, K)
        probabilities)."""
        return images, targets

    def step_hooks(self) -> StepHooks:
        """Hooks run inside every local step (see :class:`StepHooks`)."""
        return StepHooks()

    def apply(self, update: list[Tensor], *, generator: torch.Generator) -> list[Tensor]:
        """The defended update (new tensors; the inputs are not modified)."""
        return [u.clone() for u in update]

    def run_client(self, model: nn.Module, images: Tensor, labels: Tensor,
                   setup: ClientSetup) -> ClientResult:
        """One client's defended round: model, batch and step hooks, training, update transform.

        Defenses that replace the client's training (DP-SGD) or run several clients (secure
        aggregation) override this.
        """
        gen = torch.Generator().manual_seed(setup.seed)
        sent, report = self.prepare_model(copy.deepcopy(model))
        inputs, targets = self.transform_batch(images, labels, num_classes=setup.num_classes,
                                               generator=gen)
        update, kind = setup.train(sent, inputs, targets, self.step_hooks())
        return ClientResult(sent, self.apply(update, generator=gen), kind, report)

    def describe(self) -> str:
        """What the client declares, e.g. ``noise(sigma=0.01)``; parsed by :func:`parse`."""
        args = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)  # type: ignore[arg-type]
        )
        return f"{self.name}({args})"


@dataclass(frozen=True)
class StepHooks:
    """What a defense does inside each local step of the client's training.

    Attributes:
        regularizer: ``f(model) -> scalar`` added to the training loss (PRECODE's KL term).
        grad_transform: ``f(model, inputs, grads) -> grads`` applied to the step's gradient
            (``inputs`` are the step's model inputs, after normalisation; Soteria).
    """

    regularizer: Callable[[nn.Module], Tensor] | None = None
    grad_transform: Callable[[nn.Module, Tensor, list[Tensor]], list[Tensor]] | None = None


@dataclass(frozen=True)
class ClientSetup:
    """How the simulated client trains (built by :func:`gradleak.simulate`).

    Attributes:
        train: ``train(model, inputs, targets, hooks) -> (update, kind)``: the client's
            local training on a copy of ``model`` (FedSGD gradient or FedAvg delta).
        forward: ``forward(model, images) -> logits`` (normalises [0, 1] images first).
        loss_fn: the training loss ``(logits, targets) -> mean loss``.
        local_steps: local SGD steps (1: FedSGD).
        local_lr: the local learning rate.
        local_batch_size: mini-batch size of the local steps (None: the whole batch).
        num_classes: outputs of the model.
        seed: seed of the defense's randomness.
    """

    train: Callable[[nn.Module, Tensor, Tensor, StepHooks], tuple[list[Tensor], str]]
    forward: Callable[[nn.Module, Tensor], Tensor]
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    local_steps: int
    local_lr: float
    local_batch_size: int | None
    num_classes: int
    seed: int


@dataclass(frozen=True)
class ClientResult:
    """What a defended client produced.

    Attributes:
        model: the model as the server sent it (a copy; wrapped or fixed by a model defense).
        update: the shared update tensors, in ``trainable_parameters(model)`` order.
        kind: ``"gradient"`` or ``"delta"``.
        report: JSON-friendly facts about the defense (DP epsilon, replaced layers...); a
            ``"model_changed"`` entry says that ``model`` is not the architecture passed in.
    """

    model: nn.Module
    update: list[Tensor]
    kind: str
    report: dict[str, Any]


def step_slices(n: int, local_batch_size: int | None, local_steps: int) -> list[slice]:
    """The mini-batch of every local step: consecutive slices of ``local_batch_size``, cycled."""
    bs = local_batch_size or n
    starts = list(range(0, n, bs))
    return [slice(starts[i % len(starts)], starts[i % len(starts)] + bs)
            for i in range(local_steps)]


@dataclass(frozen=True)
class _NoDefense(Defense):
    """The undefended client (used when ``defense=None``)."""


def run_client(defense: Defense | None, model: nn.Module, images: Tensor, labels: Tensor,
               setup: ClientSetup) -> ClientResult:
    """Runs one client under ``defense`` (None: no defense)."""
    return (defense or _NoDefense()).run_client(model, images, labels, setup)


DEFENSES: Registry[type[Defense]] = Registry("defense")


def register_defense(name: str):  # type: ignore[no-untyped-def]
    """Class decorator registering a :class:`Defense` under ``name``."""

    def deco(cls: type[Defense]) -> type[Defense]:
        cls.name = name
        return DEFENSES.register(name)(cls)

    return deco


def create(name: str, **settings: Any) -> Defense:
    """Builds the defense ``name`` with ``settings`` (unknown or invalid settings are refused).

    Example:
        >>> import gradleak as gl
        >>> gl.defenses.create("clip", max_norm=1.0).describe()
        'clip(max_norm=1.0)'
    """
    cls = DEFENSES.get(name)
    try:
        return cls(**settings)
    except TypeError as exc:
        fields = ", ".join(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        raise ConfigError(f"defense {name!r}: {exc}; its settings are: {fields}") from None


def available() -> list[str]:
    """Names of the registered defenses."""
    return DEFENSES.available()


def parameters(name: str) -> dict[str, str]:
    """Each numeric setting of defense ``name`` with its allowed range, for help texts."""
    return {k: v.describe() for k, v in DEFENSES.get(name).ranges.items()}
