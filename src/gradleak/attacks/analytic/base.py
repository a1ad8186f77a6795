"""The family base class of the closed-form attacks (bias, R-GAP, SPEAR, CPA).

Every analytic attack repeats the same frame around its maths: validate the config when the
attack is built, check the threat model, time the run, turn recovered model inputs back into
[0, 1] images, and assemble a :class:`~gradleak.Reconstruction` that says how many private
images the batch holds and how many were found. :class:`AnalyticAttack` writes that frame
once; a subclass implements :meth:`AnalyticAttack.solve` and may extend
:meth:`AnalyticAttack.validate`.

Example:
    >>> from dataclasses import dataclass
    >>> @register_attack("my_closed_form")                          # doctest: +SKIP
    ... class Mine(AnalyticAttack):
    ...     @dataclass(frozen=True)
    ...     class Config:
    ...         tol: float = 1e-8
    ...     positive = frozenset({"tol"})
    ...     def solve(self, obs, generator, callback):
    ...         return AnalyticResult(inputs=..., expected=obs.batch_size)
"""

from __future__ import annotations

import dataclasses
import math
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradleak.attacks.analytic._common import flat_to_images, model_dtype, to_unit_range
from gradleak.attacks.base import Attack, Callback
from gradleak.errors import ConfigError
from gradleak.types import Observation, Reconstruction, Stopwatch, Trace


@dataclass
class AnalyticResult:
    """What :meth:`AnalyticAttack.solve` returns.

    Attributes:
        inputs: recovered model inputs (N, prod(data_shape)) in the model's input space
            (normalised as the client does); N may be below ``expected`` (partial result).
        labels: recovered labels (N,), or None.
        expected: how many private images the batch holds as far as the attack knows
            (shared or estimated batch size), or None.
        extras: attack-specific report, stored in ``Reconstruction.extras``.
        scores: one score per hypothesis the attack weighed (lower is better; e.g. R-GAP's
            residual per last-layer hypothesis), stored as the trace's restart scores.
        best: the index of the kept hypothesis in ``scores``.
    """

    inputs: Tensor
    labels: Tensor | None = None
    expected: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)
    best: int = 0


class AnalyticAttack(Attack):
    """Base class of the closed-form attacks.

    Subclasses declare which config fields must be positive / non-negative / in [0, 1] (the
    class sets ``positive``, ``nonnegative``, ``fractions``), may add checks in
    :meth:`validate`, and implement :meth:`solve`. Every numeric field must be finite.
    Building the attack with an invalid config raises :class:`~gradleak.errors.ConfigError`
    before any observation is touched.
    """

    positive: ClassVar[frozenset[str]] = frozenset()
    nonnegative: ClassVar[frozenset[str]] = frozenset()
    fractions: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Any | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        problems = self.validate(self.config)
        if problems:
            raise ConfigError(f"attack {self.name!r}: " + "; ".join(problems))

    def validate(self, cfg: Any) -> list[str]:
        """Problems with ``cfg`` (empty when valid); subclasses extend the list."""
        problems: list[str] = []
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                if f.name in self.positive | self.nonnegative | self.fractions:
                    problems.append(f"{f.name} must be a number, not {value!r}")
                continue
            if not math.isfinite(value):
                problems.append(f"{f.name} must be finite, not {value}")
            elif f.name in self.positive and value <= 0:
                problems.append(f"{f.name} must be > 0, not {value}")
            elif f.name in self.nonnegative and value < 0:
                problems.append(f"{f.name} must be >= 0, not {value}")
            elif f.name in self.fractions and not 0 <= value <= 1:
                problems.append(f"{f.name} must lie in [0, 1], not {value}")
        return problems

    @abstractmethod
    def solve(
        self, obs: Observation, generator: torch.Generator, callback: Callback | None
    ) -> AnalyticResult:
        """The attack's maths: recovered inputs from the observation (never ground truth)."""

    def reconstruct(
        self,
        obs: Observation,
        *,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Reconstruction:
        """Checks the threat model, runs :meth:`solve`, returns [0, 1] images.

        The result holds one image per private image, or fewer with ``expected`` set to the
        batch size (a partial result, ``Reconstruction.partial``); ``extras["found"]`` and
        ``extras["expected"]`` repeat the counts.
        """
        self.check(obs)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        with Stopwatch() as clock:
            out = self.solve(obs, gen, callback)
        dtype = model_dtype(obs.model)
        if out.inputs.shape[0]:
            images = to_unit_range(flat_to_images(out.inputs, obs), dtype)
        else:
            images = torch.zeros((0, *obs.data_shape), dtype=dtype)
        expected = out.expected
        if expected is not None and expected < images.shape[0]:
            expected = None  # the attack knows less than it found; never claim a count
        extras = {**out.extras, "found": int(images.shape[0]), "expected": expected}
        return Reconstruction(
            images=images,
            labels=out.labels,
            attack=self.name,
            config=self.config_dict(),
            trace=Trace(restart_scores=list(out.scores), best_restart=out.best,
                        wall_time=clock.elapsed),
            extras=extras,
            expected=expected,
        )
