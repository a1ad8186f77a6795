"""CIFAR-10 and CIFAR-100 from the official "python version" pickle batches.

Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.
https://www.cs.toronto.edu/~kriz/cifar.html

``root`` is the extracted folder (``cifar-10-batches-py`` / ``cifar-100-python``) or its
parent. The batches are unpickled with a restricted unpickler that only rebuilds numpy arrays,
so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gradleak.data.base import Dataset, Pool, register_dataset, resize_tensor
from gradleak.errors import ConfigError, DataError

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("_codecs", "encode"),  # how python-3 pickles of protocol < 3 store bytes
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts/lists/numbers/numpy arrays only; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a batch")
        if module == "numpy.core.multiarray":  # numpy >= 2 moved it; avoid the shim warning
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


MAX_BATCH_BYTES = 2**30
"""Largest CIFAR batch file read: 1 GiB (CIFAR-100's ``train`` is 155 MB)."""


def read_batch(path: Path) -> dict[str, Any]:
    """Reads one CIFAR pickle file into a dict with ``str`` keys.

    Never ``pickle.load``: :class:`_ArrayUnpickler` rebuilds only containers, numbers,
    bytes and numpy arrays (every other global is refused), and the file size is bounded.

    Raises:
        DataError: the file is missing, too large, truncated or not a CIFAR batch.
    """
    try:
        if path.stat().st_size > MAX_BATCH_BYTES:
            raise DataError(f"{path} is larger than {MAX_BATCH_BYTES} bytes; not a CIFAR batch")
        raw = path.read_bytes()
        obj = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except FileNotFoundError as exc:
        raise DataError(f"{path} is missing") from exc
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        ImportError,
        OSError,
        MemoryError,
        RecursionError,
        OverflowError,
        UnicodeDecodeError,
    ) as exc:
        raise DataError(
            f"{path} is corrupt or not a CIFAR python batch ({type(exc).__name__}: {exc}); "
            "download and extract the archive again"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR batch (expected a dict, got {type(obj).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _names(values: Any) -> tuple[str, ...]:
    return tuple((v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))[:100]
                 for v in values)


class _Cifar(Dataset):
    folder: str = ""
    files: dict[str, tuple[str, ...]] = {}
    meta_file: str = ""
    label_key: str = ""
    names_key: str = ""
    num_classes: int = 0
    splits = ("train", "test")
    needs_root = True

    def _find(self, root: Path) -> Path:
        for cand in (root, root / self.folder):
            if (cand / self.meta_file).is_file() or (cand / self.files["test"][0]).is_file():
                return cand
        raise DataError(
            f"no {self.folder} batches under {root}. Download {self.url}, extract it, and pass "
            f"root='.../{self.folder}' (or the folder that contains it)"
        )

    def open(self, *, root: Path | None, split: str, **options: Any) -> Pool:
        if options:
            raise ConfigError(f"{type(self).__name__} takes no options; got {sorted(options)}")
        assert root is not None
        folder = self._find(root)
        images, labels, names = _load_cifar(
            str(folder.resolve()),
            self.files[split],
            self.meta_file,
            self.label_key,
            self.names_key,
            self.num_classes,
            tuple(
                (folder / f).stat().st_mtime_ns if (folder / f).exists() else 0
                for f in self.files[split]
            ),
        )

        def read(idx: np.ndarray, size: int | None) -> Tensor:
            x = torch.from_numpy(images[idx]).float().div_(255.0)
            return resize_tensor(x, size)

        return Pool(labels, names, read, channels=3, native_size=32)


def _labels_array(values: Any, path: Path) -> np.ndarray:
    """The labels as int64, refusing strings, floats, booleans and nested lists."""
    try:
        y = np.asarray(values)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise DataError(f"{path} is corrupt: its labels are not a flat list ({exc})") from exc
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(
            f"{path} is corrupt: labels must be a flat list of integers, got {y.dtype} "
            f"{y.shape}"
        )
    return y.astype(np.int64)


@lru_cache(maxsize=2)
def _load_cifar(
    folder: str,
    files: tuple[str, ...],
    meta_file: str,
    label_key: str,
    names_key: str,
    num_classes: int,
    stamp: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    base = Path(folder)
    missing = [f for f in files if not (base / f).is_file()]
    if missing:
        raise DataError(f"{base} lacks {missing}; extract the complete CIFAR archive there")
    data, labels = [], []
    for f in files:
        batch = read_batch(base / f)
        if "data" not in batch or label_key not in batch:
            raise DataError(
                f"{base / f} is not a CIFAR batch: it lacks 'data' or '{label_key}' "
                f"(keys: {sorted(batch)})"
            )
        x, y = np.asarray(batch["data"]), _labels_array(batch[label_key], base / f)
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(x) != len(y):
            raise DataError(
                f"{base / f} is corrupt: data {x.dtype} {x.shape} with {len(y)} labels "
                "(expected uint8 (N, 3072) and N labels)"
            )
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"{base / f} is corrupt: labels outside [0, {num_classes})")
        data.append(x.reshape(-1, 3, 32, 32))
        labels.append(y)
    meta_path = base / meta_file
    names: tuple[str, ...] = tuple(str(i) for i in range(num_classes))
    if meta_path.is_file():
        meta = read_batch(meta_path)
        listed = meta.get(names_key)
        if isinstance(listed, list | tuple) and len(listed) == num_classes:
            names = _names(listed)
    return np.concatenate(data), np.concatenate(labels), names


@register_dataset("cifar10")
class Cifar10(_Cifar):
    """CIFAR-10 (10 classes, 32x32 colour): ``data_batch_1..5`` (train), ``test_batch``."""

    description = "CIFAR-10 python batches from a local folder (32x32, 10 classes)"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    folder = "cifar-10-batches-py"
    files = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
    meta_file = "batches.meta"
    label_key = "labels"
    names_key = "label_names"
    num_classes = 10


@register_dataset("cifar100")
class Cifar100(_Cifar):
    """CIFAR-100 with its 100 fine labels: ``train`` and ``test`` files, ``meta``."""

    description = "CIFAR-100 python files from a local folder (32x32, 100 fine labels)"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    folder = "cifar-100-python"
    files = {"train": ("train",), "test": ("test",)}
    meta_file = "meta"
    label_key = "fine_labels"
    names_key = "fine_label_names"
    num_classes = 100
