"""The dataset registry and the one loader, :func:`load`, shared by every dataset.

A dataset is registered once (``@register_dataset``-style, duplicate names refused) and knows
how to *open* itself into a :class:`Pool`: the labels of every item plus a reader that
decodes only the items a caller picks. :func:`load` does the picking (seeded, by class, with
or without repeated labels) the same way for every dataset, so the bundled photos, CIFAR,
MNIST and an image folder all answer the same options.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from gradleak.errors import ConfigError, DataError
from gradleak.registry import Registry

#: Reads the chosen pool items: ``(indices, size) -> float32 (k, C, size, size)`` in [0, 1].
#: ``size=None`` keeps the native size.
Reader = Callable[[np.ndarray, int | None], Tensor]

#: Environment variable naming a folder that holds the local datasets (``root`` default).
DATA_ROOT_ENV = "GRADLEAK_DATA"


@dataclass(frozen=True)
class Pool:
    """Every item of one split of a dataset: labels up front, pixels on demand.

    Attributes:
        labels: the label of every item, int64 (N,).
        class_names: the name of every class, indexed by label.
        read: decodes the chosen items (see :data:`Reader`).
        channels: channels of the native images (1 or 3).
        native_size: side length of the native images if they all share one, else None.
    """

    labels: np.ndarray
    class_names: tuple[str, ...]
    read: Reader
    channels: int
    native_size: int | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """A summary of one split of a dataset (see :func:`info`)."""

    name: str
    description: str
    split: str
    num_images: int
    num_classes: int
    class_names: tuple[str, ...]
    class_counts: tuple[int, ...]
    channels: int
    native_size: int | None


class Dataset(ABC):
    """A named image-classification dataset.

    Subclasses set :attr:`description`, :attr:`splits` and, for data read from disk,
    :attr:`url` (where to get it) and implement :meth:`open`.
    """

    description: str = ""
    #: the splits :meth:`open` accepts; ``None`` accepts any name (e.g. an image folder).
    splits: tuple[str, ...] | None = ("train",)
    #: where to download the data (None: bundled, or built by the user).
    url: str | None = None
    #: whether the data live under a user-given ``root``.
    needs_root: bool = False

    @abstractmethod
    def open(self, *, root: Path | None, split: str, **options: Any) -> Pool:
        """Opens one split.

        Args:
            root: the local folder (None for bundled data).
            split: the split name, already checked against :attr:`splits`.
            **options: dataset-specific options.

        Raises:
            DataError: when the data are missing or corrupt.
        """


DATASETS: Registry[Dataset] = Registry("dataset")


def register_dataset(name: str) -> Callable[[type[Dataset]], type[Dataset]]:
    """Class decorator registering an instance of a :class:`Dataset` subclass as ``name``.

    Example:
        >>> @register_dataset("my_photos")          # doctest: +SKIP
        ... class MyPhotos(Dataset):
        ...     def open(self, *, root, split, **options): ...
    """

    def deco(cls: type[Dataset]) -> type[Dataset]:
        DATASETS.register(name)(cls())
        return cls

    return deco


def available() -> list[str]:
    """The names of the registered datasets, sorted.

    Example:
        >>> "sample" in available()
        True
    """
    return DATASETS.available()


# ---------------------------------------------------------------------------------- opening
def _resolve_root(name: str, dataset: Dataset, root: str | Path | None) -> Path | None:
    if root is not None:
        return Path(root).expanduser()
    if not dataset.needs_root:
        return None
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser() / name
    where = f" Download it from {dataset.url} and pass" if dataset.url else " Pass"
    raise DataError(
        f"dataset {name!r} is read from a local folder and no root= was given.{where} "
        f"root='path/to/{name}' to gradleak.data.load (or set ${DATA_ROOT_ENV} to a folder "
        f"holding a '{name}' subfolder). Nothing is downloaded at run time."
    )


def _open(name: str, root: str | Path | None, split: str, options: dict[str, Any]) -> Pool:
    dataset = DATASETS.get(name)
    if dataset.splits is not None and split not in dataset.splits:
        raise ConfigError(
            f"dataset {name!r} has no split {split!r}; choose one of {list(dataset.splits)}"
        )
    pool = dataset.open(root=_resolve_root(name, dataset, root), split=split, **options)
    if len(pool.labels) == 0:
        raise DataError(f"dataset {name!r} (split {split!r}) holds no images")
    return pool


def info(
    name: str, *, root: str | Path | None = None, split: str = "train", **options: Any
) -> DatasetInfo:
    """Describes one split of a dataset: class names, counts, channels, native size.

    Args:
        name: a name from :func:`available`.
        root: the local folder for datasets read from disk.
        split: the split to describe.
        **options: dataset-specific options (as for :func:`load`).

    Example:
        >>> info("sample").num_classes
        10
    """
    pool = _open(name, root, split, options)
    counts = np.bincount(pool.labels, minlength=len(pool.class_names))
    return DatasetInfo(
        name=name,
        description=DATASETS.get(name).description,
        split=split,
        num_images=len(pool.labels),
        num_classes=len(pool.class_names),
        class_names=pool.class_names,
        class_counts=tuple(int(c) for c in counts),
        channels=pool.channels,
        native_size=pool.native_size,
    )


# -------------------------------------------------------------------------------- selection
def _class_ids(classes: Sequence[int | str], class_names: Sequence[str]) -> list[int]:
    ids: list[int] = []
    for c in classes:
        if isinstance(c, str):
            if c not in class_names:
                raise ConfigError(f"unknown class {c!r}; classes are {list(class_names)}")
            ids.append(list(class_names).index(c))
        else:
            ci = int(c)
            if not 0 <= ci < len(class_names):
                raise ConfigError(f"class {ci} is out of range [0, {len(class_names)})")
            ids.append(ci)
    if not ids:
        raise ConfigError("classes= is empty; give at least one class or leave it None")
    return sorted(set(ids))


def select(
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    n: int | None,
    seed: int,
    classes: Sequence[int | str] | None = None,
    unique_labels: bool = False,
    label_list: Sequence[int | str] | None = None,
) -> np.ndarray:
    """Chooses pool indices (the selection rules of :func:`load`, without reading pixels).

    Args:
        labels: the label of every pool item.
        class_names: the class names, indexed by label.
        n: how many items (None: all that the other options allow, in pool order).
        seed: seed of the random choice.
        classes: draw only from these classes (indices or names).
        unique_labels: draw ``n`` distinct classes, one item each.
        label_list: draw exactly these labels, in this order (repeats allowed); ``n`` is
            then ignored.

    Returns:
        The chosen indices into the pool, int64.

    Raises:
        ConfigError: when the options contradict each other or ask for more than exists.
    """
    rng = np.random.default_rng(seed)
    allowed = (
        _class_ids(classes, class_names) if classes is not None else list(range(len(class_names)))
    )
    by_class = {c: np.flatnonzero(labels == c) for c in allowed}
    present = [c for c in allowed if len(by_class[c])]

    if label_list is not None:
        if unique_labels:
            raise ConfigError("give labels= or unique_labels=True, not both")
        wanted = [_class_ids([c], class_names)[0] for c in label_list]
        out = np.empty(len(wanted), dtype=np.int64)
        for c in sorted(set(wanted)):
            if c not in by_class:
                raise ConfigError(f"labels= asks for class {c}, which classes= excludes")
            slots = [i for i, w in enumerate(wanted) if w == c]
            if len(slots) > len(by_class[c]):
                raise ConfigError(
                    f"labels= asks for {len(slots)} images of class {c} ({class_names[c]!r}) "
                    f"but it has only {len(by_class[c])}"
                )
            out[slots] = rng.choice(by_class[c], size=len(slots), replace=False)
        return out

    if unique_labels:
        if n is not None and n > len(present):
            raise ConfigError(
                f"unique_labels=True needs n <= the number of classes to draw from "
                f"({len(present)}); got n={n}"
            )
        chosen = (
            np.asarray(present, dtype=np.int64)
            if n is None
            else rng.choice(np.asarray(present, dtype=np.int64), size=n, replace=False)
        )
        return np.asarray([rng.choice(by_class[int(c)]) for c in chosen], dtype=np.int64)

    candidates = np.sort(np.concatenate([by_class[c] for c in allowed]))
    if n is None:  # everything allowed, in pool order
        return candidates.astype(np.int64)
    k = n
    if k < 0:
        raise ConfigError("n must be >= 0")
    if k > len(candidates):
        raise ConfigError(
            f"n={n} is more than the {len(candidates)} images available "
            f"(after classes={classes}); lower n or widen classes"
        )
    return rng.choice(candidates, size=k, replace=False).astype(np.int64)


# ------------------------------------------------------------------------ pixel utilities
def to_channels(images: Tensor, channels: int | None) -> Tensor:
    """Converts (N, C, H, W) images to ``channels`` (1: ITU-R 601 luma; 3: grey repeated)."""
    if channels is None or images.shape[1] == channels:
        return images
    if channels == 3 and images.shape[1] == 1:
        return images.repeat(1, 3, 1, 1)
    if channels == 1 and images.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
        return (images * w).sum(dim=1, keepdim=True)
    raise ConfigError(f"cannot convert {images.shape[1]}-channel images to {channels} channels")


def resize_tensor(images: Tensor, size: int | None) -> Tensor:
    """Resizes square (N, C, H, W) images in [0, 1] to ``size`` (antialiased bilinear)."""
    if size is None or images.shape[-2:] == (size, size):
        return images
    out = F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return out.clamp_(0.0, 1.0)


def pil_to_tensor(img: Image.Image) -> Tensor:
    """A PIL image (L or RGB) as float32 (C, H, W) in [0, 1]."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).float().div_(255.0)


def square_resize(img: Image.Image, size: int | None) -> Image.Image:
    """Centre-crops a PIL image to a square and resizes it to ``size`` (Lanczos, antialiased)."""
    w, h = img.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return img


# ------------------------------------------------------------------------------- the loader
def load(
    name: str,
    *,
    size: int | None = 32,
    n: int | None = 8,
    seed: int = 0,
    root: str | Path | None = None,
    classes: Sequence[int | str] | None = None,
    unique_labels: bool = False,
    labels: Sequence[int | str] | None = None,
    split: str = "train",
    channels: int | None = None,
    **options: Any,
) -> tuple[Tensor, Tensor]:
    """Loads a batch of images and labels from a registered dataset.

    Selection is seeded and never depends on global RNG state: the same arguments give the
    same batch. Nothing is downloaded; datasets other than ``sample`` and ``holdout`` are
    read from ``root`` (or ``$GRADLEAK_DATA/<name>``).

    Args:
        name: a dataset from :func:`available`: ``"sample"`` (bundled photos, 10 classes),
            ``"holdout"`` (other regions of the same photos, cut at load time),
            ``"cifar10"``, ``"cifar100"``, ``"mnist"``, ``"fashion_mnist"``,
            ``"imagefolder"``, ``"flowers17"``, and the offline domains ``"digits"``,
            ``"faces"``, ``"patches"`` (splits ``"train"`` / ``"holdout"``).
        size: side length of the returned square images (None: the native size).
        n: how many images (None: every image the other options allow, in dataset order).
        seed: seed of the random selection.
        root: the local folder of datasets read from disk.
        classes: draw only from these classes (indices or names), e.g. ``classes=[0, 3]``
            gives a batch whose labels repeat, as in label-count (iLRG) experiments.
        unique_labels: draw ``n`` distinct classes, one image each (the setting of
            iDLG-style label recovery).
        labels: draw exactly these labels in this order, repeats allowed, e.g.
            ``labels=[0, 0, 0, 3]``; ``n`` is then ignored (the batch has ``len(labels)``).
        split: ``"train"`` or ``"test"`` for CIFAR/MNIST; ``"train"`` or ``"holdout"`` for the
            offline domains; a subfolder for an image folder.
        channels: force 1 (luma) or 3 (grey repeated) channels; None keeps the native ones.
        **options: dataset-specific options (e.g. ``per_class=`` for a flat image folder).

    Returns:
        ``(images, labels)``: float32 (n, C, size, size) in [0, 1] and int64 (n,).

    Raises:
        DataError: the data are missing (the message says where to get them) or corrupt.
        ConfigError: the options contradict each other or ask for more images than exist.
        RegistryError: ``name`` is not a registered dataset.

    Example:
        >>> images, labels = load("sample", size=32, n=4, seed=0)
        >>> tuple(images.shape), labels.dtype
        ((4, 3, 32, 32), torch.int64)
        >>> _, labels = load("sample", n=6, classes=["cat", "flower"])
        >>> sorted(set(labels.tolist()))
        [1, 9]
    """
    if size is not None and size < 1:
        raise ConfigError("size must be a positive integer or None")
    if channels not in (None, 1, 3):
        raise ConfigError("channels must be 1, 3 or None")
    pool = _open(name, root, split, options)
    idx = select(
        pool.labels,
        pool.class_names,
        n=n,
        seed=seed,
        classes=classes,
        unique_labels=unique_labels,
        label_list=labels,
    )
    if len(idx) == 0:
        c = channels or pool.channels
        s = size or pool.native_size or 0
        return torch.zeros(0, c, s, s), torch.zeros(0, dtype=torch.int64)
    images = pool.read(idx, size)
    images = to_channels(images, channels).to(torch.float32).clamp_(0.0, 1.0).contiguous()
    return images, torch.from_numpy(pool.labels[idx].astype(np.int64))
