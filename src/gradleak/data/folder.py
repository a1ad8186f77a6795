"""Images from a local folder: one subfolder per class, or a flat folder in class blocks.

* ``imagefolder``: ``root/<class>/*.jpg`` (classes sorted by name; label = position). If
  ``root/<split>`` is a folder (``root/train/<class>/...``) it is used. A flat folder (images
  directly in ``root``) needs ``per_class=k``: the sorted files form consecutive blocks of k.
* ``flowers17``: the Oxford 17 Category Flower Dataset (Nilsback & Zisserman, CVPR 2006),
  https://www.robots.ox.ac.uk/~vgg/data/flowers/17/ ; ``17flowers.tgz`` extracts to
  ``jpg/image_0001.jpg .. image_1360.jpg``: 80 images per class in file order.

Images are decoded only when chosen, converted to RGB, centre-cropped to a square and resized
with Pillow's Lanczos filter (antialiased).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from gradleak.data.base import Dataset, Pool, pil_to_tensor, register_dataset, square_resize
from gradleak.errors import ConfigError, DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

FLOWERS17_CLASSES: tuple[str, ...] = (
    "daffodil",
    "snowdrop",
    "lily valley",
    "bluebell",
    "crocus",
    "iris",
    "tigerlily",
    "tulip",
    "fritillary",
    "sunflower",
    "daisy",
    "colts' foot",
    "dandelion",
    "cowslip",
    "buttercup",
    "windflower",
    "pansy",
)


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _decode(path: Path, size: int | None) -> Tensor:
    """Decodes one image file, refusing decompression bombs and truncated or foreign files.

    Pillow's ``Image.MAX_IMAGE_PIXELS`` is the ceiling: above it Pillow only warns (up to
    twice the limit), here every image above it is refused before its pixels are decoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                rgb = img.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(
            f"{path} is too large to decode safely ({exc}); shrink it, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, MemoryError) as exc:
        raise DataError(f"{path} is not a readable image ({exc}); remove or replace it") from exc
    return pil_to_tensor(square_resize(rgb, size))


def _folder_pool(files: list[Path], labels: np.ndarray, names: tuple[str, ...]) -> Pool:
    def read(idx: np.ndarray, size: int | None) -> Tensor:
        out = [_decode(files[int(i)], size) for i in idx]
        shapes = {tuple(t.shape) for t in out}
        if len(shapes) > 1:
            raise DataError(
                f"the chosen images differ in size {sorted(shapes)}; pass size= to resize them"
            )
        return torch.stack(out)

    return Pool(labels, names, read, channels=3, native_size=None)


def _flat(files: list[Path], per_class: int, where: Path) -> tuple[np.ndarray, int]:
    if per_class < 1:
        raise ConfigError("per_class must be a positive integer")
    if len(files) % per_class:
        raise DataError(
            f"{where} holds {len(files)} images, not a multiple of per_class={per_class}; "
            "the folder is incomplete or per_class is wrong"
        )
    return np.arange(len(files), dtype=np.int64) // per_class, len(files) // per_class


@register_dataset("imagefolder")
class ImageFolder(Dataset):
    """A local folder with one subfolder per class (or a flat folder with ``per_class=``)."""

    description = "images from root/<class>/* (or a flat folder with per_class=k)"
    splits = None
    needs_root = True

    def open(
        self, *, root: Path | None, split: str, per_class: int | None = None, **options: Any
    ) -> Pool:
        if options:
            raise ConfigError(f"imagefolder options are per_class=; got {sorted(options)}")
        assert root is not None
        if not root.is_dir():
            raise DataError(
                f"{root} is not a folder; pass root= a folder with one subfolder of images "
                "per class (root/<class>/*.jpg)"
            )
        base = root / split if (root / split).is_dir() else root
        if base is root and split not in ("train", "all"):
            raise DataError(f"{root} has no '{split}' subfolder")
        if per_class is not None:
            files = _images_in(base)
            labels, k = _flat(files, per_class, base)
            return _folder_pool(files, labels, tuple(f"class_{i}" for i in range(k)))
        class_dirs = sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
        files, labels_list, names = [], [], []
        for d in class_dirs:
            imgs = _images_in(d)
            if not imgs:
                continue
            names.append(d.name)
            files.extend(imgs)
            labels_list.extend([len(names) - 1] * len(imgs))
        if not files:
            hint = (
                " (it holds images directly: pass per_class=k for a flat folder)"
                if _images_in(base)
                else ""
            )
            raise DataError(f"no class subfolders with images under {base}{hint}")
        return _folder_pool(files, np.asarray(labels_list, dtype=np.int64), tuple(names))


@register_dataset("flowers17")
class Flowers17(Dataset):
    """Oxford 17 Category Flowers: ``jpg/image_0001.jpg``..., 80 images per class in order."""

    description = "Oxford Flowers-17 from a local folder (jpg/, 80 images per class, 17 classes)"
    url = "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/17flowers.tgz"
    needs_root = True
    per_class = 80

    def open(self, *, root: Path | None, split: str, **options: Any) -> Pool:
        if options:
            raise ConfigError(f"flowers17 takes no options; got {sorted(options)}")
        assert root is not None
        for cand in (root / "jpg", root):
            if cand.is_dir() and _images_in(cand):
                files = _images_in(cand)
                break
        else:
            raise DataError(
                f"no Flowers-17 images under {root} (looked in jpg/ and the folder itself). "
                f"Download {self.url}, extract it, and pass root= the folder holding jpg/"
            )
        labels, k = _flat(files, self.per_class, cand)
        if k > len(FLOWERS17_CLASSES):
            raise DataError(f"{cand} holds {len(files)} images; Flowers-17 has 1360")
        return _folder_pool(files, labels, FLOWERS17_CLASSES[:k])
