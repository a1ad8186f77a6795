"""Compression of the update: sign (signSGD) and low-bit quantisation with stochastic rounding.

signSGD: Bernstein et al., ICML 2018 (the client shares ``sign(g)``). Low-bit quantisation
with unbiased stochastic rounding: QSGD (Alistarh et al., NeurIPS 2017); here on a uniform
grid of ``2**bits`` levels in ``[-max|g|, max|g|]`` per parameter tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.defenses.base import Defense, Interval, check_choice, register_defense
from gradleak.defenses.functional import (
    flatten,
    quantize_nearest,
    quantize_stochastic,
    unflatten,
)

ROUNDING = ("stochastic", "nearest")


@register_defense("sign")
@dataclass(frozen=True)
class SignCompress(Defense):
    """Shares only the sign of every entry (``sign(0) = 0``)."""

    def apply(self, update: list[Tensor], *, generator: torch.Generator) -> list[Tensor]:
        return [torch.sign(u) for u in update]


@register_defense("quantize")
@dataclass(frozen=True)
class Quantize(Defense):
    """Rounds every entry to one of ``2**bits`` uniform levels of its tensor's range.

    ``rounding="stochastic"`` (default) rounds up with probability equal to the distance
    from the lower level, so the result is unbiased; ``"nearest"`` rounds deterministically.
    """

    bits: int = 4
    rounding: str = "stochastic"
    ranges = {"bits": Interval(1, 16, integer=True)}

    def validate(self) -> None:
        super().validate()
        check_choice(self.name, "rounding", self.rounding, ROUNDING)

    def apply(self, update: list[Tensor], *, generator: torch.Generator) -> list[Tensor]:
        flat, sizes = flatten(update)
        bits = int(self.bits)
        if self.rounding == "nearest":
            return unflatten(quantize_nearest(flat, sizes, bits), update)
        return unflatten(quantize_stochastic(flat, sizes, bits, generator), update)
