"""The attack extension point: subclass :class:`Attack`, give it a frozen ``Config``, register.

Example:
    >>> from dataclasses import dataclass
    >>> @register_attack("my_attack")              # doctest: +SKIP
    ... class MyAttack(Attack):
    ...     @dataclass(frozen=True)
    ...     class Config:
    ...         iterations: int = 100
    ...     requires = frozenset({"labels"})
    ...     def reconstruct(self, obs, *, generator=None, callback=None): ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from gradleak.config import config_dict, with_overrides
from gradleak.errors import ThreatModelError
from gradleak.registry import Registry
from gradleak.types import Observation, Reconstruction


@dataclass(frozen=True)
class Progress:
    """Passed to an attack's ``callback`` while it runs."""

    iteration: int
    total: int
    loss: float


Callback = Callable[[Progress], None]

# A requirement is a name an attack declares; its check returns None when the observation
# meets it, else a sentence saying what is missing.
RequirementCheck = Callable[[Observation], str | None]
REQUIREMENTS: Registry[RequirementCheck] = Registry("requirement")


@REQUIREMENTS.register("labels")
def _needs_labels(obs: Observation) -> str | None:
    return None if obs.labels is not None else (
        "the labels (simulate(..., share_labels=True)) or a label-recovery setting "
        "such as labels='idlg'"
    )


@REQUIREMENTS.register("batch_size")
def _needs_batch_size(obs: Observation) -> str | None:
    return None if obs.batch_size is not None else (
        "the batch size (simulate(..., share_batch_size=True))"
    )


@REQUIREMENTS.register("gradient")
def _needs_gradient(obs: Observation) -> str | None:
    return None if obs.kind == "gradient" else (
        "a FedSGD gradient (local_steps=1); this observation is a FedAvg delta"
    )


class Attack(ABC):
    """Base class of every attack. Subclasses set ``Config`` and may extend ``requires``.

    Construct with keyword overrides of the config; unknown fields raise ``ConfigError``.
    """

    name: ClassVar[str] = "attack"
    Config: ClassVar[type]
    requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Any | None = None, **overrides: Any) -> None:
        base = config if config is not None else self.Config()
        self.config = with_overrides(base, f"attack {self.name!r}", **overrides)

    def requirements(self) -> set[str]:
        """What this attack, with its config, needs from the threat model."""
        return set(self.requires)

    def check(self, obs: Observation) -> None:
        """Raises :class:`ThreatModelError` naming every unmet requirement."""
        missing = [msg for req in sorted(self.requirements())
                   if (msg := REQUIREMENTS.get(req)(obs))]
        if missing:
            raise ThreatModelError(
                f"attack {self.name!r} needs " + "; and ".join(missing)
            )

    def config_dict(self) -> dict[str, Any]:
        """The config as a JSON-friendly dict (stored in the Reconstruction)."""
        return {"attack": self.name, **config_dict(self.config)}

    @abstractmethod
    def reconstruct(
        self,
        obs: Observation,
        *,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Reconstruction:
        """Reconstructs the client's batch from ``obs`` (never from ground truth)."""


def timed_run(run: Callable[[torch.Generator], Reconstruction],
              generator: torch.Generator | None) -> Reconstruction:
    """Runs ``run(generator)`` in full float32 precision and records its wall time.

    ``generator`` defaults to a CPU generator seeded with 0 (so a bare call is deterministic).
    """
    from gradleak.precision import full_precision
    from gradleak.types import Stopwatch

    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    with Stopwatch() as sw, full_precision():
        out = run(gen)
    out.trace.wall_time = sw.elapsed
    return out


ATTACKS: Registry[type[Attack]] = Registry("attack")


def register_attack(name: str) -> Callable[[type[Attack]], type[Attack]]:
    """Class decorator registering an attack under ``name`` (duplicates are refused)."""

    def deco(cls: type[Attack]) -> type[Attack]:
        ATTACKS.register(name)(cls)
        cls.name = name
        return cls

    return deco


def available() -> list[str]:
    """Names of the registered attacks (recipes)."""
    return ATTACKS.available()


def create(name: str, **overrides: Any) -> Attack:
    """Instantiates the attack ``name`` with config ``overrides``."""
    return ATTACKS.get(name)(**overrides)


def reconstruct(
    obs: Observation,
    attack: str = "ig",
    *,
    seed: int = 0,
    callback: Callback | None = None,
    **overrides: Any,
) -> Reconstruction:
    """Runs the attack ``attack`` on ``obs``.

    Args:
        obs: what the server observed.
        attack: a name from :func:`available`.
        seed: seed of the attack's randomness (initialisation, restarts).
        callback: called with :class:`Progress` while the attack runs.
        **overrides: any field of the attack's config (unknown fields raise ``ConfigError``);
            objects are fields too (``generative_prior=`` for ``gias``, ``inverter=`` for
            ``lti``: the object, or the path of a saved one).

    Example:
        >>> import gradleak as gl
        >>> rec = gl.reconstruct(obs, attack="ig", iterations=200, restarts=2)  # doctest: +SKIP
    """
    if not isinstance(obs, Observation):
        raise TypeError("reconstruct() takes an Observation (from gradleak.simulate or load)")
    att = create(attack, **overrides)
    att.check(obs)
    gen = torch.Generator().manual_seed(seed)
    return att.reconstruct(obs, generator=gen, callback=callback)
