"""MNIST and Fashion-MNIST from the official IDX files (plain or ``.gz``).

LeCun et al., "Gradient-based learning applied to document recognition", 1998;
Xiao et al., "Fashion-MNIST", 2017.

``root`` holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``; the
``train-images.idx3-ubyte`` spelling is accepted too), directly or in ``MNIST/raw`` /
``raw``. Images are 28x28 grey; ``size=32`` (the default of :func:`gradleak.data.load`)
resizes them, ``size=None`` keeps 28.
"""

from __future__ import annotations

import gzip
import math
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gradleak.data.base import Dataset, Pool, register_dataset, resize_tensor
from gradleak.errors import ConfigError, DataError

_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


MAX_IDX_BYTES = 2**31
"""Largest IDX file (after decompression) read into memory: 2 GiB (MNIST's is 47 MB)."""


def _read_bounded(path: Path) -> bytes:
    """The file's bytes (decompressed for ``.gz``), refusing more than MAX_IDX_BYTES."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read(MAX_IDX_BYTES + 1)
    if len(raw) > MAX_IDX_BYTES:
        raise DataError(
            f"{path} holds more than {MAX_IDX_BYTES} bytes (after decompression); it is not "
            "an MNIST-style IDX file"
        )
    return bytes(raw)


def read_idx(path: Path) -> np.ndarray:
    """Reads an IDX file (LeCun's format: magic ``0 0 type ndim``, big-endian dims, data).

    Raises:
        DataError: the file is missing, truncated, too large (also as a gzip bomb), or its
            header does not match its size.
    """
    try:
        raw = _read_bounded(path)
    except FileNotFoundError as exc:
        raise DataError(f"{path} is missing") from exc
    except (OSError, EOFError, zlib.error, MemoryError) as exc:
        raise DataError(f"{path} is corrupt ({exc}); download it again") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number); download it again")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path} is corrupt: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if ndim > 1 and min(dims[1:]) == 0:
        raise DataError(f"{path} is corrupt: header dimensions {dims} include a zero")
    dtype = _IDX_DTYPES[raw[2]]
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    if len(raw) - header != expected:
        raise DataError(
            f"{path} is corrupt: header says {dims} ({expected} bytes of data) but the file "
            f"holds {len(raw) - header}; download it again"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


class _Idx(Dataset):
    class_names: tuple[str, ...] = ()
    splits = ("train", "test")
    needs_root = True
    _prefix = {"train": "train", "test": "t10k"}

    def _file(self, root: Path, split: str, kind: str) -> Path:
        prefix = self._prefix[split]
        ndim = 3 if kind == "images" else 1
        names = (f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte")
        for folder in (root, root / "MNIST" / "raw", root / "FashionMNIST" / "raw", root / "raw"):
            for name in names:
                for cand in (folder / name, folder / f"{name}.gz"):
                    if cand.is_file():
                        return cand
        raise DataError(
            f"no {names[0]}[.gz] under {root} (also looked in MNIST/raw and raw). Download "
            f"the four IDX files from {self.url} and pass root= the folder holding them"
        )

    def open(self, *, root: Path | None, split: str, **options: Any) -> Pool:
        if options:
            raise ConfigError(f"{type(self).__name__} takes no options; got {sorted(options)}")
        assert root is not None
        img_path = self._file(root, split, "images")
        lab_path = self._file(root, split, "labels")
        images, labels = _load_idx_pair(
            str(img_path.resolve()),
            str(lab_path.resolve()),
            img_path.stat().st_mtime_ns,
            lab_path.stat().st_mtime_ns,
            len(self.class_names),
        )
        side = images.shape[1] if images.shape[1] == images.shape[2] else None

        def read(idx: np.ndarray, size: int | None) -> Tensor:
            x = torch.from_numpy(images[idx][:, None].astype(np.float32)).div_(255.0)
            if size is not None and x.shape[-2] != x.shape[-1]:
                raise DataError("non-square IDX images cannot be resized to a square")
            return resize_tensor(x, size)

        return Pool(labels, self.class_names, read, channels=1, native_size=side)


@lru_cache(maxsize=2)
def _load_idx_pair(
    img_file: str, lab_file: str, _t1: int, _t2: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(Path(img_file))
    labels = read_idx(Path(lab_file))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{img_file} is not an image file (expected uint8 (N, H, W))")
    if labels.dtype.kind not in "iu":
        raise DataError(f"{lab_file} holds {labels.dtype} values; labels must be integers")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{lab_file} holds {labels.shape} labels for {len(images)} images in {img_file}"
        )
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{lab_file} is corrupt: labels outside [0, {num_classes})")
    return images, labels


@register_dataset("mnist")
class Mnist(_Idx):
    """MNIST handwritten digits (28x28 grey, 10 classes)."""

    description = "MNIST IDX files from a local folder (28x28 grey, 10 digits)"
    url = (
        "http://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)"
    )
    class_names = tuple(str(d) for d in range(10))


@register_dataset("fashion_mnist")
class FashionMnist(_Idx):
    """Fashion-MNIST (28x28 grey, 10 clothing classes), same IDX layout as MNIST."""

    description = "Fashion-MNIST IDX files from a local folder (28x28 grey, 10 classes)"
    url = "https://github.com/zalandoresearch/fashion-mnist#get-the-data"
    class_names = (
        "t-shirt/top",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle boot",
    )
