"""The engine's representation seam: what an optimisation attack searches.

The engine (:mod:`.engine`) owns restarts, the objective, optimisers, schedules, stages and
the trace. A :class:`Representation` owns the tensors that are optimised and how they
*decode* into the candidate batch in the model's input space:

* :class:`Pixels` (every pixel-space recipe: ``dlg``, ``idlg``, ``ig``, ``gradinversion``):
  the candidate batch itself, clamped to the pixel box after each step (IG's constraint).
* Generative representations (a generator's latent, latent + per-image generator weights,
  an intermediate generator feature) live in :mod:`gradleak.attacks.generative`.

Every optimised tensor has the restart as its first dimension (R, ...), so the engine's
batched optimisers step all restarts independently. ``decode`` maps them to (R, B, C, H, W)
model inputs, ``project`` restores constraints in place after each step, and ``draw``
produces the starting tensors of one restart (restart by restart, so adding restarts never
changes the first ones).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.attacks.optimization.inits import INITS
from gradleak.types import Observation

__all__ = ["Box", "Pixels", "Representation", "StageStart"]


@dataclass(frozen=True)
class Box:
    """The model's input space in pixel units: input = ``lo + scale * pixels``.

    Attributes:
        lo: (C, 1, 1) input-space value of pixel 0.
        scale: (C, 1, 1) input-space width of one pixel unit.
    """

    lo: Tensor
    scale: Tensor

    @classmethod
    def of(cls, obs: Observation) -> Box:
        """The box of the observation's normalisation, in the update's dtype and device."""
        ref = obs.update[0]
        c = obs.data_shape[0]
        lo = obs.normalize(torch.zeros(1, c, 1, 1, dtype=ref.dtype, device=ref.device))
        hi = obs.normalize(torch.ones(1, c, 1, 1, dtype=ref.dtype, device=ref.device))
        return cls(lo.reshape(c, 1, 1), (hi - lo).reshape(c, 1, 1))

    @property
    def hi(self) -> Tensor:
        """(C, 1, 1) input-space value of pixel 1."""
        return self.lo + self.scale

    def to_pixels(self, z: Tensor) -> Tensor:
        """Model inputs -> pixels (not clamped)."""
        return (z - self.lo) / self.scale

    def to_input(self, x: Tensor) -> Tensor:
        """Pixels -> model inputs."""
        return self.lo + self.scale * x


@dataclass(frozen=True)
class StageStart:
    """Where a stage starts: the previous stage's chosen restart.

    Attributes:
        tensors: that restart's optimised tensors of the previous stage, each (1, ...).
        images: its decoded batch in [0, 1], (B, C, H, W).
        representation: the previous stage's representation (to read its tensors); None
            for images given from outside (e.g. a learned inverter's output to refine).
        logits: its soft-label logits (1, B, K) when labels are optimised, else None.
    """

    tensors: tuple[Tensor, ...]
    images: Tensor
    representation: Representation | None
    logits: Tensor | None = None


class Representation(ABC):
    """Base class: the optimised tensors of one stage and their decoding.

    Args:
        shape: the candidate batch of one restart, (B, C, H, W).
        box: the input space in pixel units.
    """

    def __init__(self, shape: tuple[int, ...], box: Box) -> None:
        self.shape = tuple(shape)
        self.box = box

    @abstractmethod
    def draw(self, generator: torch.Generator) -> list[Tensor]:
        """The starting tensors of one restart, each with a leading dimension of 1."""

    @abstractmethod
    def decode(self, tensors: Sequence[Tensor]) -> Tensor:
        """Optimised tensors (R, ...) -> candidate batch (R, B, C, H, W) in input space."""

    def project(self, tensors: Sequence[Tensor]) -> None:  # noqa: B027 (optional hook)
        """Restores constraints in place after an optimiser step (default: none)."""

    def images(self, tensors: Sequence[Tensor]) -> Tensor:
        """The decoded batch as pixels in [0, 1], (R, B, C, H, W), detached."""
        with torch.no_grad():
            return self.box.to_pixels(self.decode(tensors)).clamp(0, 1)


class Pixels(Representation):
    """The candidate batch itself, in the model's input space (every pixel-space recipe).

    Args:
        shape: (B, C, H, W).
        box: the input space in pixel units.
        init: a name in ``INITS`` (drawn in input space).
        boxed: clamp to the pixel box [0, 1] after every step (IG's box constraint).
        start: start every restart from these images in [0, 1], (B, C, H, W), instead of
            drawing (refining an earlier result).
    """

    def __init__(self, shape: tuple[int, ...], box: Box, *, init: str = "randn",
                 boxed: bool = True, start: Tensor | None = None) -> None:
        super().__init__(shape, box)
        self.init = INITS.get(init)
        self.boxed = boxed
        self.start = start

    def draw(self, generator: torch.Generator) -> list[Tensor]:
        """One restart drawn by the ``init`` rule (or the start images), (1, B, C, H, W)."""
        if self.start is not None:
            return [self.box.to_input(self.start.to(self.box.lo))[None].clone()]
        return [self.init((1, *self.shape), generator, self.box.lo, self.box.hi)]

    def decode(self, tensors: Sequence[Tensor]) -> Tensor:
        """The tensor itself (no copy)."""
        return tensors[0]

    def project(self, tensors: Sequence[Tensor]) -> None:
        """IG's box constraint: clamp to the input-space values of pixels 0 and 1."""
        if self.boxed:
            z = tensors[0]
            with torch.no_grad():
                z.copy_(torch.maximum(torch.minimum(z, self.box.hi), self.box.lo))
