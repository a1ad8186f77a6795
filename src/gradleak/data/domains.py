"""Offline image domains for generative priors: ``digits``, ``faces`` and ``patches``.

Each domain is built at load time from data that installed packages already carry (nothing is
downloaded) and has two deterministic, disjoint splits: ``"train"`` (what a generative prior
is trained on) and ``"holdout"`` (what attacks are benchmarked on; training never sees it).

* ``digits``: scikit-learn's 1,797 handwritten 8x8 digits (``load_digits``; ink bright on a
  dark ground, like MNIST), upsampled (bilinear) to ``size``, grey, labels 0-9. Every fifth
  image (index % 5 == 4) is held out: 359 holdout, 1,438 train.
* ``faces``: the 100 face images of scikit-image's ``lfw_subset`` (25x25 grey crops of
  Labeled Faces in the Wild; the 100 non-face images are not used), resized to ``size``.
  The subset names nobody, so every label is 0 (class ``"face"``). Every fifth face is held
  out: 20 holdout, 80 train.
* ``patches``: square crops of random position and scale cut from the ten photographs behind
  the bundled ``sample`` set (:mod:`gradleak.data.sources`), RGB, label = the photo's class.
  The split is *by photo*: the holdout patches come from photos that no train patch touches
  (:data:`PATCH_HOLDOUT_PHOTOS`), so a prior trained on ``patches`` never saw any pixel of
  a holdout patch. 200 patches per train photo, 50 per holdout photo.

Use ``channels=3`` in :func:`gradleak.data.load` to replicate grey images to RGB.

Example:
    >>> import gradleak as gl
    >>> x, y = gl.data.load("digits", size=32, n=4, seed=0, split="holdout")
    >>> tuple(x.shape), int(y.max()) <= 9
    ((4, 1, 32, 32), True)
    >>> x, _ = gl.data.load("faces", size=32, n=2, channels=3)
    >>> tuple(x.shape)
    (2, 3, 32, 32)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from gradleak.data.base import Dataset, Pool, pil_to_tensor, register_dataset, resize_tensor
from gradleak.data.sources import CLASS_NAMES, CLASSES, SOURCES, Box, crop
from gradleak.errors import ConfigError, DataError

SPLITS = ("train", "holdout")
#: every ``HOLDOUT_EVERY``-th image (index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1) is held out.
HOLDOUT_EVERY = 5
#: the photo classes whose patches form the ``patches`` holdout split (no train patch uses them).
PATCH_HOLDOUT_PHOTOS: tuple[str, ...] = ("cat", "pagoda")
#: patches cut per photo in each split.
PATCHES_PER_PHOTO = {"train": 200, "holdout": 50}
#: side of a patch as a fraction of the photo's shorter side (uniform in this range).
PATCH_SCALE = (0.12, 0.4)
#: fixed seed of the patch boxes (the pool is the same for everyone; ``load(seed=)`` picks).
PATCH_SEED = 20211206


def split_mask(count: int, split: str) -> np.ndarray:
    """Boolean mask of ``split`` among ``count`` indexed images (every fifth is held out).

    Example:
        >>> split_mask(6, "holdout").nonzero()[0].tolist()
        [4]
    """
    holdout = np.arange(count) % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
    return holdout if split == "holdout" else ~holdout


def _no_options(name: str, options: dict[str, Any]) -> None:
    if options:
        raise ConfigError(f"the {name} dataset takes no options; got {sorted(options)}")


def _grey_pool(domain: str, split: str, labels: np.ndarray, names: tuple[str, ...]) -> Pool:
    """A pool over one split of a grey domain, resized on read (cached per size)."""
    native = int(_GREY[domain]().shape[-1])

    def read(idx: np.ndarray, size: int | None) -> Tensor:
        return _grey_split(domain, split, size)[torch.from_numpy(idx)]

    return Pool(labels, names, read, channels=1, native_size=native)


@lru_cache(maxsize=4)
def _grey_split(domain: str, split: str, size: int | None) -> Tensor:
    images = _GREY[domain]()
    keep = torch.from_numpy(split_mask(len(images), split))
    return resize_tensor(images[keep], size)


# ------------------------------------------------------------------------------- digits
@lru_cache(maxsize=1)
def _digits_and_labels() -> tuple[Tensor, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise DataError("the digits dataset needs scikit-learn; pip install scikit-learn") from exc
    bunch = load_digits()
    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None]
    return images.clamp(0.0, 1.0), np.asarray(bunch.target, dtype=np.int64)


@register_dataset("digits")
class DigitsDataset(Dataset):
    """scikit-learn's 8x8 handwritten digits, upsampled; a fixed every-fifth-image holdout."""

    description = (
        "scikit-learn's 1,797 8x8 handwritten digits (grey, 10 classes), upsampled; "
        "split 'holdout' = every fifth image (359), 'train' = the rest (1,438)"
    )
    splits = SPLITS

    def open(self, *, root: Path | None, split: str, **options: Any) -> Pool:
        _no_options("digits", options)
        labels = _digits_and_labels()[1]
        names = tuple(str(d) for d in range(10))
        return _grey_pool("digits", split, labels[split_mask(len(labels), split)], names)


# -------------------------------------------------------------------------------- faces
@lru_cache(maxsize=1)
def _faces() -> Tensor:
    try:
        from skimage.data import lfw_subset
    except ImportError as exc:  # pragma: no cover - scikit-image is a dependency
        raise DataError("the faces dataset needs scikit-image; pip install scikit-image") from exc
    try:
        arr = np.asarray(lfw_subset(), dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"scikit-image's lfw_subset could not be read ({exc}); reinstall scikit-image"
        ) from exc
    if arr.ndim != 3 or arr.shape[0] < 100:
        raise DataError(f"scikit-image's lfw_subset has shape {arr.shape}; reinstall it")
    if arr.max() > 1.0:  # some versions return uint8
        arr = arr / 255.0
    return torch.from_numpy(arr[:100].astype(np.float32))[:, None].clamp(0.0, 1.0)


@register_dataset("faces")
class FacesDataset(Dataset):
    """The 100 faces of scikit-image's ``lfw_subset``; a fixed every-fifth-face holdout."""

    description = (
        "the 100 25x25 grey face crops of scikit-image's lfw_subset (Labeled Faces in the "
        "Wild), resized; label 0 ('face'); 'holdout' = every fifth face (20), 'train' = 80"
    )
    splits = SPLITS

    def open(self, *, root: Path | None, split: str, **options: Any) -> Pool:
        _no_options("faces", options)
        keep = split_mask(len(_faces()), split)
        labels = np.zeros(int(keep.sum()), dtype=np.int64)
        return _grey_pool("faces", split, labels, ("face",))


_GREY: dict[str, Callable[[], Tensor]] = {
    "digits": lambda: _digits_and_labels()[0],
    "faces": _faces,
}


# ------------------------------------------------------------------------------ patches
def patch_boxes(split: str) -> list[tuple[int, Box]]:
    """``(label, box)`` of every patch of ``split`` in pool order (fixed, seeded boxes).

    Labels index :data:`gradleak.data.sources.CLASS_NAMES`; train patches come only from
    photos outside :data:`PATCH_HOLDOUT_PHOTOS`, holdout patches only from those photos.
    """
    rng = np.random.default_rng(PATCH_SEED)
    out: list[tuple[int, Box]] = []
    for label, cls in enumerate(CLASSES):
        w, h = _photo(cls.source).size
        short = min(w, h)
        # draw the boxes of both splits for every photo so that each split's boxes are stable
        count = PATCHES_PER_PHOTO["train"]
        sides = rng.uniform(*PATCH_SCALE, size=count) * short
        fx, fy = rng.random(count), rng.random(count)
        if (cls.name in PATCH_HOLDOUT_PHOTOS) != (split == "holdout"):
            continue
        for side_f, ux, uy in list(zip(sides, fx, fy, strict=True))[: PATCHES_PER_PHOTO[split]]:
            side = max(8, int(side_f))
            out.append((label, (int(ux * (w - side)), int(uy * (h - side)), side)))
    return out


@lru_cache(maxsize=len(SOURCES))
def _photo(source: str) -> Image.Image:
    return SOURCES[source].open()


@lru_cache(maxsize=2)
def _boxes(split: str) -> tuple[tuple[int, Box], ...]:
    return tuple(patch_boxes(split))


@lru_cache(maxsize=8192)
def _patch(split: str, i: int, size: int) -> Tensor:
    label, box = _boxes(split)[i]
    return pil_to_tensor(crop(_photo(CLASSES[label].source), box, size))


@register_dataset("patches")
class PatchesDataset(Dataset):
    """Random square crops of the ten bundled source photos, split by photo."""

    description = (
        "square crops of random position and scale (12-40% of the shorter side) of the ten "
        "photos behind 'sample' (RGB, label = photo class); 'train' = 200 per photo from 8 "
        f"photos, 'holdout' = 50 per photo from the photos {list(PATCH_HOLDOUT_PHOTOS)} "
        "that no train patch touches"
    )
    splits = SPLITS

    def open(self, *, root: Path | None, split: str, **options: Any) -> Pool:
        _no_options("patches", options)
        labels = np.asarray([label for label, _ in _boxes(split)], dtype=np.int64)

        def read(idx: np.ndarray, size: int | None) -> Tensor:
            side = 64 if size is None else size
            return torch.stack([_patch(split, int(i), side) for i in idx])

        return Pool(labels, CLASS_NAMES, read, channels=3, native_size=None)
