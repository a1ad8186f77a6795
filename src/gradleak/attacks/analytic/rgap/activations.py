"""R-GAP: inverting each elementwise activation (which pre-activations a layer output fixes).

Zhu & Blaschko, ICLR 2021. All R-GAP linear algebra runs in float64 (:data:`F64`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

F64 = torch.float64


@dataclass(frozen=True)
class Inversion:
    """How to undo an elementwise activation ``x = act(z)``.

    Attributes:
        inverse: ``x -> (z, known)``; ``known`` marks entries whose pre-activation is
            determined (a ReLU output of 0 hides its pre-activation).
        derivative: ``(z, x) -> act'(z)``.
    """

    inverse: Callable[[Tensor], tuple[Tensor, Tensor]]
    derivative: Callable[[Tensor, Tensor], Tensor]


def _all_known(z: Tensor) -> tuple[Tensor, Tensor]:
    return z, torch.ones_like(z, dtype=torch.bool)


def _leaky(mod: nn.Module) -> Inversion:
    slope = float(mod.negative_slope)  # type: ignore[attr-defined, arg-type]
    if slope <= 0:
        return _relu(mod)
    return Inversion(
        inverse=lambda x: _all_known(torch.where(x < 0, x / slope, x)),
        derivative=lambda z, x: torch.where(z < 0, torch.full_like(z, slope), torch.ones_like(z)),
    )


def _relu(_mod: nn.Module) -> Inversion:
    return Inversion(
        inverse=lambda x: (x, x > 0),
        derivative=lambda z, x: (x > 0).to(x.dtype),
    )


def _sigmoid(_mod: nn.Module) -> Inversion:
    def inv(x: Tensor) -> tuple[Tensor, Tensor]:
        xc = x.clamp(1e-12, 1 - 1e-12)
        return _all_known(torch.log(xc) - torch.log1p(-xc))

    return Inversion(inverse=inv, derivative=lambda z, x: torch.sigmoid(z) * (1 - torch.sigmoid(z)))


def _tanh(_mod: nn.Module) -> Inversion:
    return Inversion(
        inverse=lambda x: _all_known(torch.atanh(x.clamp(-1 + 1e-12, 1 - 1e-12))),
        derivative=lambda z, x: 1 - torch.tanh(z) ** 2,
    )


def _identity(_mod: nn.Module) -> Inversion:
    return Inversion(inverse=_all_known, derivative=lambda z, x: torch.ones_like(z))


# Activation type -> how to invert it (extend by adding an entry).
INVERSIONS: dict[type[nn.Module], Callable[[nn.Module], Inversion]] = {
    nn.LeakyReLU: _leaky,
    nn.ReLU: _relu,
    nn.Sigmoid: _sigmoid,
    nn.Tanh: _tanh,
    nn.Identity: _identity,
}
