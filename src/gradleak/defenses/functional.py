"""The math of the update defenses on flat batches, shared by the defenses and the surrogates.

Every function maps ``flat`` (R, P) -- R updates, each the concatenation of the parameter
tensors whose numels are ``sizes`` -- to (R, P). A defense calls it with R = 1 on the
client's update; :mod:`gradleak.defenses.adaptive` calls the same function on an attacker's
candidates, so a surrogate equals its defense on the forward pass by construction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: added to norms before dividing (the clip of an all-zero update stays zero)
NORM_EPS = 1e-12


def flatten(update: Sequence[Tensor]) -> tuple[Tensor, list[int]]:
    """Concatenates per-parameter tensors into (1, P) and returns their numels."""
    sizes = [u.numel() for u in update]
    return torch.cat([u.reshape(-1) for u in update]).unsqueeze(0), sizes


def unflatten(flat: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Splits a (1, P) row back into tensors shaped like ``like``."""
    parts = torch.split(flat[0], [u.numel() for u in like])
    return [p.reshape(u.shape).clone() for p, u in zip(parts, like, strict=True)]


def segments(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """``(start, stop)`` column ranges of the parameter tensors."""
    out, start = [], 0
    for n in sizes:
        out.append((start, start + int(n)))
        start += int(n)
    return out


def clip_scale(flat: Tensor, max_norm: float) -> Tensor:
    """Per row, ``min(1, max_norm / (||row|| + eps))`` as an (R, 1) tensor."""
    norm = flat.norm(dim=1, keepdim=True)
    return torch.clamp(max_norm / (norm + NORM_EPS), max=1.0)


def clip_rows(flat: Tensor, max_norm: float) -> Tensor:
    """Scales each row to l2 norm at most ``max_norm`` (differentiable)."""
    return flat * clip_scale(flat, max_norm)


def drop_count(numel: int, ratio: float) -> int:
    """How many of ``numel`` entries a pruning ``ratio`` zeroes (``floor(ratio * numel)``)."""
    return int(ratio * numel)


def topk_keep_mask(flat: Tensor, sizes: Sequence[int], ratio: float) -> Tensor:
    """Per row and parameter tensor, 1 on the ``numel - floor(ratio * numel)`` largest |entries|.

    Ties are broken by position (``torch.topk``), so the number kept is exact.
    """
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mag = flat.detach().abs()
    for start, stop in segments(sizes):
        keep = (stop - start) - drop_count(stop - start, ratio)
        if keep <= 0:
            continue
        idx = mag[:, start:stop].topk(keep, dim=1).indices + start
        mask.scatter_(1, idx, True)
    return mask


def random_keep_mask(flat: Tensor, sizes: Sequence[int], ratio: float,
                     generator: torch.Generator) -> Tensor:
    """Per row and parameter tensor, 1 on a uniformly random subset of exact size."""
    mask = torch.zeros(flat.shape, dtype=torch.bool)
    for r in range(flat.shape[0]):
        for start, stop in segments(sizes):
            n = stop - start
            keep = n - drop_count(n, ratio)
            idx = torch.randperm(n, generator=generator)[:keep] + start
            mask[r, idx] = True
    return mask.to(flat.device)


def quantization_grid(flat: Tensor, sizes: Sequence[int], bits: int) -> tuple[Tensor, Tensor]:
    """Positions ``t`` in [0, L-1] on the uniform grid of L = 2**bits levels, and the scales.

    Each parameter tensor of each row gets its own scale ``s = max |entry|``; the levels are
    ``s * (2 j / (L - 1) - 1)`` for j = 0..L-1 (so -s and s are levels).
    """
    levels = 2**bits - 1
    scale = torch.empty_like(flat)
    for start, stop in segments(sizes):
        seg = flat.detach()[:, start:stop].abs().amax(dim=1, keepdim=True)
        scale[:, start:stop] = seg
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    t = (flat.detach() / safe + 1.0) * (levels / 2.0)
    return t.clamp(0.0, float(levels)), scale


def dequantize(q: Tensor, scale: Tensor, bits: int) -> Tensor:
    """Grid indices back to values: ``s * (2 q / (L - 1) - 1)`` (zero where the scale is 0)."""
    levels = 2**bits - 1
    return scale * (q * (2.0 / levels) - 1.0)


def quantize_nearest(flat: Tensor, sizes: Sequence[int], bits: int) -> Tensor:
    """Deterministic rounding to the nearest of the 2**bits levels (no gradient)."""
    t, scale = quantization_grid(flat, sizes, bits)
    return dequantize(torch.round(t), scale, bits)


def quantize_stochastic(flat: Tensor, sizes: Sequence[int], bits: int,
                        generator: torch.Generator) -> Tensor:
    """Unbiased stochastic rounding to one of the two neighbouring levels (QSGD-style)."""
    t, scale = quantization_grid(flat, sizes, bits)
    low = torch.floor(t)
    u = torch.rand(t.shape, generator=generator, dtype=t.dtype).to(t.device)
    q = low + (u < (t - low)).to(t.dtype)
    return dequantize(q, scale, bits)
