"""GGL's adaptive attack: estimate the client's defense from its update, apply it to guesses.

Li et al., "Auditing Privacy Defenses in Federated Learning via Generative Gradient
Leakage", CVPR 2022, Sec. 4: the attacker does not trust what the client declares; it reads
the defense off the received update and applies the same transformation to every candidate's
gradient before matching (the authors' ``reconstructor.py``):

* **clipping**: the bound is estimated as the received update's global l2 norm; each
  candidate is clipped to it (``g * min(1, C / ||g||)``);
* **pruning / sparsification**: the rate is estimated as the fraction of exact zeros in the
  received update; each candidate keeps, per parameter tensor, only its entries of largest
  magnitude at that rate;
* **additive noise** cannot be undone and is left alone (as in the authors' ImageNet code).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gradleak.attacks.optimization.distances import GradientSpace

__all__ = ["estimate_defense"]


def _prune_rows(sim: Tensor, sizes: tuple[int, ...], rate: float) -> Tensor:
    """Keeps, per tensor and row, the ``1 - rate`` fraction of entries of largest magnitude."""
    parts = []
    for part in torch.split(sim, list(sizes), dim=-1):
        n = part.shape[-1]
        drop = min(n - 1, int(round(rate * n)))
        if drop <= 0:
            parts.append(part)
            continue
        thresh = part.abs().kthvalue(drop, dim=-1, keepdim=True).values
        parts.append(torch.where(part.abs() > thresh, part, torch.zeros_like(part)))
    return torch.cat(parts, dim=-1)


def estimate_defense(space: GradientSpace) -> Callable[[Tensor], Tensor]:
    """The transformation GGL's adaptive attacker applies to candidate updates (R, P).

    Args:
        space: the observed update (flattened) and its per-tensor sizes.

    Returns:
        A function ``(R, P) -> (R, P)``: clip to the observed norm, then prune at the observed
        zero rate (when the update has exact zeros).
    """
    target = space.target
    bound = float(target.norm())
    rate = float((target == 0).to(torch.float64).mean())
    sizes = space.sizes

    def defend(sim: Tensor) -> Tensor:
        norms = sim.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        out = sim * (bound / norms).clamp(max=1.0)
        return _prune_rows(out, sizes, rate) if rate > 0 else out

    return defend
