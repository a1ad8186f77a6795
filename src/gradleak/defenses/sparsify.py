"""Sparsification of the update: magnitude (top-k) pruning and random sparsification.

Gradient pruning as the defense of DLG (Zhu et al., NeurIPS 2019, Sec. 5: "prune gradients
with small magnitudes") and GGL's audit (Li et al., CVPR 2022); random sparsification as in
communication-efficient FL (Konecny et al., 2016, "random mask"). Both drop exactly
``floor(ratio * numel)`` entries of every parameter tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.defenses.base import Defense, Interval, register_defense
from gradleak.defenses.functional import flatten, random_keep_mask, topk_keep_mask, unflatten


@register_defense("prune")
@dataclass(frozen=True)
class MagnitudePrune(Defense):
    """Zeroes the ``ratio`` fraction of smallest-magnitude entries of each tensor (top-k)."""

    ratio: float = 0.9
    ranges = {"ratio": Interval(0.0, 1.0, high_open=True)}

    def apply(self, update: list[Tensor], *, generator: torch.Generator) -> list[Tensor]:
        flat, sizes = flatten(update)
        return unflatten(flat * topk_keep_mask(flat, sizes, self.ratio), update)


@register_defense("sparsify")
@dataclass(frozen=True)
class RandomSparsify(Defense):
    """Zeroes a random ``ratio`` fraction of each tensor's entries.

    With ``rescale`` the kept entries are divided by the kept fraction, so that the update is
    unbiased.
    """

    ratio: float = 0.9
    rescale: bool = False
    ranges = {"ratio": Interval(0.0, 1.0, high_open=True)}

    def apply(self, update: list[Tensor], *, generator: torch.Generator) -> list[Tensor]:
        flat, sizes = flatten(update)
        out = flat * random_keep_mask(flat, sizes, self.ratio, generator)
        if self.rescale:
            out = out * torch.cat([torch.full((n,), n / max(n - int(self.ratio * n), 1),
                                              dtype=flat.dtype) for n in sizes]).to(flat.device)
        return unflatten(out, update)
