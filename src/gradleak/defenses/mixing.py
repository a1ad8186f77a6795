"""Defenses on the data: MixUp and InstaHide-style mixing of the private batch.

* MixUp (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018): every image is
  replaced by ``lam x_i + (1 - lam) x_j`` with ``lam ~ Beta(alpha, alpha)`` and j a random
  permutation of the batch; the one-hot labels are mixed with the same weights.
* InstaHide (Huang et al., "InstaHide: Instance-hiding Schemes for Private Distributed
  Learning", ICML 2020), the inside-dataset variant on the private batch: every image is a
  mix of ``k`` images of the batch (itself and k - 1 others) with random weights that sum to
  one (Dirichlet(1,...,1)), then each pixel's sign is flipped at random in the centred space
  ``2x - 1``. For an image in [0, 1] a sign flip maps the pixel v to ``1 - v``, so the result
  stays in [0, 1]. Labels are mixed with the same weights.

The server never sees the mixed batch; the private batch (what an attack must reconstruct) is
the unmixed one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.defenses.base import Defense, Interval, register_defense


def soft_labels(labels: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """Index labels (B,) or probabilities (B, K) -> probabilities (B, K)."""
    if labels.dim() == 2:
        return labels.to(dtype)
    return torch.nn.functional.one_hot(labels.long(), num_classes).to(dtype)


def mix(images: Tensor, targets: Tensor, weights: Tensor, partners: Tensor
        ) -> tuple[Tensor, Tensor]:
    """``sum_j weights[:, j] * batch[partners[:, j]]`` for images and targets.

    Args:
        images: (B, C, H, W).
        targets: (B, K) probabilities.
        weights: (B, k) mixing weights (rows sum to 1).
        partners: (B, k) indices into the batch.
    """
    w = weights.to(images.dtype)
    mixed = (w[:, :, None, None, None] * images[partners]).sum(dim=1)
    return mixed, (w[:, :, None] * targets[partners]).sum(dim=1)


@register_defense("mixup")
@dataclass(frozen=True)
class MixUp(Defense):
    """MixUp of the private batch with ``lam ~ Beta(alpha, alpha)`` (one lam per image).

    Attributes:
        alpha: the Beta distribution's parameter (the paper uses 0.2 to 1.0).
    """

    alpha: float = 1.0
    stage = "data"
    ranges = {"alpha": Interval(0.0, 1e3, low_open=True)}

    def transform_batch(self, images: Tensor, targets: Tensor, *, num_classes: int,
                        generator: torch.Generator) -> tuple[Tensor, Tensor]:
        b = len(images)
        lam = _beta(float(self.alpha), b, generator)
        perm = torch.randperm(b, generator=generator)
        weights = torch.stack([lam, 1.0 - lam], dim=1)
        partners = torch.stack([torch.arange(b), perm], dim=1)
        probs = soft_labels(targets, num_classes, images.dtype)
        return mix(images, probs, weights, partners.to(images.device))


@register_defense("instahide")
@dataclass(frozen=True)
class InstaHide(Defense):
    """InstaHide-style mixing of ``k`` private images and random pixel sign flips.

    Attributes:
        k: images per mix (the paper uses 4 or 6).
        sign_flip: whether pixels are flipped at random (InstaHide's one-time mask).
    """

    k: int = 4
    sign_flip: bool = True
    stage = "data"
    ranges = {"k": Interval(1, 64, integer=True)}

    def transform_batch(self, images: Tensor, targets: Tensor, *, num_classes: int,
                        generator: torch.Generator) -> tuple[Tensor, Tensor]:
        b, k = len(images), int(self.k)
        others = [torch.randperm(b, generator=generator) for _ in range(k - 1)]
        partners = torch.stack([torch.arange(b), *others], dim=1)
        e = -torch.log(torch.rand((b, k), generator=generator, dtype=torch.float64))
        weights = e / e.sum(dim=1, keepdim=True)  # Dirichlet(1, ..., 1)
        probs = soft_labels(targets, num_classes, images.dtype)
        mixed, mixed_targets = mix(images, probs, weights, partners.to(images.device))
        if self.sign_flip:
            flip = torch.rand(mixed.shape, generator=generator) < 0.5
            mixed = torch.where(flip.to(mixed.device), 1.0 - mixed, mixed)
        return mixed, mixed_targets


def _beta(alpha: float, n: int, generator: torch.Generator) -> Tensor:
    """n draws of Beta(alpha, alpha) from the seeded generator: ``X / (X + Y)`` of two Gammas."""
    x = _gamma(alpha, n, generator)
    y = _gamma(alpha, n, generator)
    return x / (x + y)


def _gamma(alpha: float, n: int, generator: torch.Generator) -> Tensor:
    """n draws of Gamma(alpha, 1) (Marsaglia & Tsang, 2000; boosted for alpha < 1)."""
    boost = alpha < 1.0
    a = alpha + 1.0 if boost else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    out = torch.empty(n, dtype=torch.float64)
    for i in range(n):
        while True:
            z = float(torch.randn(1, generator=generator, dtype=torch.float64))
            v = (1.0 + c * z) ** 3
            if v <= 0:
                continue
            u = float(torch.rand(1, generator=generator, dtype=torch.float64))
            if u < 1 - 0.0331 * z**4 or math.log(u) < 0.5 * z * z + d * (1 - v + math.log(v)):
                out[i] = d * v
                break
    if boost:
        w = torch.rand(n, generator=generator, dtype=torch.float64)
        out = out * w ** (1.0 / alpha)
    return out
