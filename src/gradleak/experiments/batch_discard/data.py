"""``batch-discard``'s data: distinct photos, client labels, the server's BN ConvNet."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradleak.errors import ConfigError
from gradleak.experiments.batch_discard.settings import Settings
from gradleak.types import Normalization


@lru_cache(maxsize=2)
def _pool(size: int) -> tuple[Tensor, Tensor]:
    from gradleak import data

    xs, ys = data.load("sample", size=size, n=None)
    xh, yh = data.load("holdout", size=size, n=None)
    return torch.cat([xs, xh]), torch.cat([ys, yh])


def photo_pool(size: int = 64) -> tuple[Tensor, Tensor]:
    """Every bundled photo (``sample`` then ``holdout``) at ``size``: images and labels."""
    x, y = _pool(size)
    return x.clone(), y.clone()


def distinct_images(n: int, size: int, seed: int, *, pool: Tensor | None = None) -> Tensor:
    """``n`` distinct images: the pool photos in random order, then random resized crops.

    Args:
        n: how many images.
        size: output side length.
        seed: seed of the choice and the augmentations.
        pool: (P, C, S, S) photos (default: :func:`photo_pool` at 64 px).

    Returns:
        (n, C, size, size) float images in [0, 1].
    """
    photos = _pool(64)[0] if pool is None else pool
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(photos), generator=gen)
    out: list[Tensor] = []
    side = photos.shape[-1]
    for i in range(n):
        img = photos[order[i % len(photos)]][None]
        if i >= len(photos):  # an augmented copy: crop 60-95 % of the side, maybe mirrored
            s = int(torch.randint(int(0.6 * side), int(0.95 * side) + 1, (1,), generator=gen))
            top = int(torch.randint(0, side - s + 1, (1,), generator=gen))
            left = int(torch.randint(0, side - s + 1, (1,), generator=gen))
            img = img[..., top : top + s, left : left + s]
            if bool(torch.rand(1, generator=gen) < 0.5):
                img = img.flip(-1)
        out.append(
            F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=True).clamp(0.0, 1.0)
        )
    return torch.cat(out)


def batch_labels(n: int, mode: str, num_classes: int, seed: int) -> Tensor:
    """Client labels: ``unique`` (n distinct classes) or ``repeated`` (two classes only).

    Repeated batches of two or more images contain both classes.
    """
    gen = torch.Generator().manual_seed(seed + 7919)
    if mode == "unique":
        if n > num_classes:
            raise ConfigError(f"unique labels need batch <= num_classes ({num_classes}); got {n}")
        return torch.randperm(num_classes, generator=gen)[:n]
    if mode == "repeated":
        pair = torch.randperm(num_classes, generator=gen)[:2]
        pick = torch.randint(0, 2, (n,), generator=gen)
        if n >= 2:
            pick[0], pick[1] = 0, 1
            pick = pick[torch.randperm(n, generator=gen)]
        return pair[pick]
    raise ConfigError(f"label mode must be 'unique' or 'repeated', not {mode!r}")


#: CIFAR-10's per-channel mean and std: the client normalises its [0, 1] photos with them,
#: as in the papers' CIFAR setups (the attacks' step sizes are meant for normalised inputs).
CIFAR_NORM = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def client_batches(s: Settings, seed: int) -> Iterator[tuple[str, int, Tensor, Tensor]]:
    """``(label mode, batch size, images, labels)`` for every batch of the attack parts.

    Unique-label batches larger than ``s.num_classes`` are skipped.
    """
    for mode in s.label_modes:
        for b in s.batch_sizes:
            if mode == "unique" and b > s.num_classes:
                continue
            yield (mode, b, distinct_images(b, s.size, seed=seed + 31 * b),
                   batch_labels(b, mode, s.num_classes, seed + b))


def normalization(s: Settings) -> Normalization | None:
    """The client's input normalisation (None when ``s.normalize`` is off)."""
    return Normalization(*CIFAR_NORM) if s.normalize else None


def server_model(s: Settings, seed: int) -> nn.Module:
    """The BN ConvNet the server sends, with BN running statistics of earlier rounds.

    The weights stay untrained; ``bn_rounds`` forward passes in training mode over other
    photos (random crops of the bundled photos, never the attacked batches' seeds) set the
    running statistics, as they would be after a few rounds of federated training.
    """
    from gradleak import models

    model = models.create(s.model, num_classes=s.num_classes, in_shape=(3, s.size, s.size),
                          width=s.width, seed=seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the warm-up rounds
    model.train()
    norm = normalization(s)
    with torch.no_grad():
        for r in range(s.bn_rounds):
            x = distinct_images(32, s.size, seed=10_000 + 97 * seed + r)
            model(x if norm is None else norm.apply(x))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
    return model.train(s.bn_mode == "train")
