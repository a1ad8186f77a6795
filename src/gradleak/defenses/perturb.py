"""Update perturbations: Gaussian and Laplacian noise, norm clipping.

Additive noise and clipping as studied against gradient inversion by DLG (Zhu et al., NeurIPS
2019, Sec. 5) and audited by GGL (Li et al., CVPR 2022, Sec. 5); clipping here acts on the
whole update (DP-SGD's per-sample form is :mod:`gradleak.defenses.dpsgd`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.defenses.base import Defense, Interval, register_defense
from gradleak.defenses.functional import clip_rows, flatten, unflatten


@register_defense("noise")
@dataclass(frozen=True)
class GaussianNoise(Defense):
    """Adds i.i.d. N(0, sigma^2) noise to every update entry.

    Example:
        >>> import gradleak as gl
        >>> gl.defenses.create("noise", sigma=0.01).describe()
        'noise(sigma=0.01)'
    """

    sigma: float = 0.01
    ranges = {"sigma": Interval(0.0, 1e6)}

    def apply(self, update: list[Tensor], *, generator: torch.Generator) -> list[Tensor]:
        out = []
        for u in update:
            eps = torch.randn(u.shape, generator=generator, dtype=u.dtype, device="cpu")
            out.append(u + self.sigma * eps.to(u.device))
        return out


@register_defense("laplace")
@dataclass(frozen=True)
class LaplaceNoise(Defense):
    """Adds i.i.d. Laplace(0, scale) noise (variance ``2 scale^2``), as in DLG's Sec. 5."""

    scale: float = 0.01
    ranges = {"scale": Interval(0.0, 1e6)}

    def apply(self, update: list[Tensor], *, generator: torch.Generator) -> list[Tensor]:
        out = []
        for u in update:
            # inverse CDF: -b sign(v) log(1 - 2|v|), v ~ U(-1/2, 1/2)
            v = torch.rand(u.shape, generator=generator, dtype=torch.float64) - 0.5
            lap = -torch.sign(v) * torch.log1p(-2.0 * v.abs().clamp(max=0.5 - 1e-16))
            out.append(u + (self.scale * lap).to(dtype=u.dtype, device=u.device))
        return out


@register_defense("clip")
@dataclass(frozen=True)
class NormClip(Defense):
    """Scales the whole update so that its global l2 norm is at most ``max_norm``."""

    max_norm: float = 1.0
    ranges = {"max_norm": Interval(0.0, None, low_open=True)}

    def apply(self, update: list[Tensor], *, generator: torch.Generator) -> list[Tensor]:
        flat, _ = flatten(update)
        return unflatten(clip_rows(flat, self.max_norm), update)
