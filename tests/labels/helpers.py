"""Constructed observations whose labels are known exactly (for the label-strategy tests)."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

import gradleak as gl


def linear_model(num_features: int, num_classes: int, *, zero: bool = True, bias: bool = True,
                 seed: int = 0) -> nn.Module:
    """Flatten + one linear layer: the features are the input pixels themselves."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(num_features, num_classes, bias=bias))
    if zero:
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
    return model


def one_hot_images(batch: int, num_features: int) -> Tensor:
    """Image j has a single bright pixel at position j: disjoint non-negative features."""
    x = torch.zeros(batch, 1, 1, num_features)
    for j in range(batch):
        x[j, 0, 0, j] = 1.0
    return x


def observe(model: nn.Module, x: Tensor, y: Tensor, **kwargs: object) -> gl.Observation:
    obs, _ = gl.simulate(model, x, y, **kwargs)  # type: ignore[arg-type]
    return obs


def counts(labels: Tensor, num_classes: int) -> list[int]:
    return torch.bincount(labels, minlength=num_classes).tolist()


@lru_cache(maxsize=2)
def _photo_pool(size: int) -> Tensor:
    xs, _ = gl.data.load("sample", size=size, n=None)
    xh, _ = gl.data.load("holdout", size=size, n=None)
    return torch.cat([xs, xh])


def photo_batch(n: int, seed: int, *, size: int = 32) -> Tensor:
    """``n`` bundled photos (``sample`` + ``holdout``, 70) in a seeded order; beyond 70 the
    mirrored photos follow (up to 140 distinct images), then the order repeats."""
    pool = _photo_pool(size)
    pool = torch.cat([pool, pool.flip(-1)])
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    return pool[order[torch.arange(n) % len(pool)]].clone()


def random_labels(n: int, num_classes: int, seed: int, *, classes: int | None = None) -> Tensor:
    """Labels drawn uniformly from ``classes`` random classes (all ``num_classes`` if None);
    with ``classes`` set, each of them occurs at least once."""
    gen = torch.Generator().manual_seed(seed)
    if classes is None:
        return torch.randint(0, num_classes, (n,), generator=gen)
    chosen = torch.randperm(num_classes, generator=gen)[:classes]
    pick = torch.randint(0, classes, (n,), generator=gen)
    pick[:classes] = torch.arange(classes)
    return chosen[pick[torch.randperm(n, generator=gen)]]
