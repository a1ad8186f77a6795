"""Image priors (regularisers) added to the gradient-matching objective.

A prior scores a batch of candidate reconstructions for every restart at once:
``x`` has shape (R, B, C, H, W) in [0, 1] and the prior returns (R,) penalties, one per
restart (unweighted; the recipe multiplies by the weight). Priors are registered by name and
configured in a recipe's ``priors`` mapping ``{name: weight}`` or
``{name: {"weight": w, **settings}}``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from gradleak.errors import ConfigError
from gradleak.registry import Registry
from gradleak.schema import Float, check
from gradleak.types import Observation


@dataclass
class PriorContext:
    """What the engine knows at one iteration, shared by all priors.

    Attributes:
        iteration: the current iteration (0-based).
        iterations: the total number of iterations.
        bn_inputs: per BatchNorm layer of the model, the batch mean and biased variance of
            that layer's input for the dummy batch, each (R, C_layer) (empty unless a prior
            has ``needs_bn_stats``).
        state: scratch space a prior may keep between iterations (keyed by its name).
    """

    iteration: int = 0
    iterations: int = 1
    bn_inputs: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


class Prior(ABC):
    """Base class of priors. Subclasses take keyword settings in ``__init__``."""

    name: ClassVar[str] = "prior"
    needs_bn_stats: ClassVar[bool] = False

    def prepare(self, obs: Observation) -> None:  # noqa: B027  (optional hook)
        """Reads what the prior needs from the observation (e.g. BN running statistics)."""

    @abstractmethod
    def __call__(self, x: Tensor, ctx: PriorContext) -> Tensor:
        """Penalty per restart, shape (R,), for candidates ``x`` of shape (R, B, C, H, W)."""


PRIORS: Registry[type[Prior]] = Registry("prior")


def register_prior(name: str) -> Callable[[type[Prior]], type[Prior]]:
    """Class decorator registering a prior under ``name``."""

    def deco(cls: type[Prior]) -> type[Prior]:
        PRIORS.register(name)(cls)
        cls.name = name
        return cls

    return deco


def build_priors(spec: Mapping[str, float | Mapping[str, Any]]) -> list[tuple[float, Prior]]:
    """Turns ``{name: weight | {"weight": w, **settings}}`` into ``[(weight, prior)]``."""
    out: list[tuple[float, Prior]] = []
    for name, value in spec.items():
        cls = PRIORS.get(name)
        if isinstance(value, Mapping):
            settings = dict(value)
            raw = settings.pop("weight", 1.0)
        else:
            settings, raw = {}, value
        # a finite number >= 0: no strings, bools, NaN or negative weights
        weight = check(Float(0.0), raw, f"priors.{name}.weight", error=ConfigError)
        try:
            prior = cls(**settings)
        except TypeError as exc:
            raise ConfigError(f"prior {name!r}: {exc}") from None
        if weight != 0.0:
            out.append((weight, prior))
    return out
