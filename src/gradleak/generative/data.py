"""Training images for a prior, named by a short spec: ``digits``, ``mnist:PATH``, ``folder:PATH``.

A spec is a registered dataset name (see :func:`gradleak.data.available`), optionally followed
by ``:PATH`` for datasets read from disk. ``folder:PATH`` is an image folder: one subfolder
per class, or images directly in ``PATH``. The offline domains (``digits``, ``faces``,
``patches``) give their ``train`` split only, so their ``holdout`` split stays unseen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from gradleak.data import info, load
from gradleak.data.folder import IMAGE_SUFFIXES
from gradleak.errors import ConfigError, DataError

#: short names accepted in a spec in place of a dataset name
ALIASES = {"folder": "imagefolder"}


def _flat_folder_size(root: Path) -> int:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of images")
    has_dirs = any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir())
    if has_dirs:
        return 0
    return sum(1 for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def resolve(
    spec: str,
    *,
    image_size: int,
    channels: int | None = None,
    max_images: int | None = None,
    seed: int = 0,
) -> tuple[Tensor, str]:
    """Loads the training images a spec names.

    Args:
        spec: ``NAME`` or ``NAME:PATH`` (e.g. ``"digits"``, ``"cifar10:~/data/cifar"``,
            ``"folder:photos/"``).
        image_size: side the images are resized to.
        channels: force 1 or 3 channels (None keeps the dataset's).
        max_images: use at most this many images (a seeded random subset).
        seed: seed of that subset.

    Returns:
        ``(images, description)``: float32 (N, C, S, S) in [0, 1] and a one-line description
        for the prior's metadata.

    Raises:
        ConfigError: the spec is malformed. DataError: the data cannot be read.

    Example:
        >>> x, text = resolve("digits", image_size=16, max_images=10)
        >>> tuple(x.shape), text.startswith("digits")
        ((10, 1, 16, 16), True)
    """
    name, sep, path = spec.partition(":")
    name = ALIASES.get(name, name)
    if not name or (sep and not path):
        raise ConfigError(f"data spec {spec!r} is malformed; use NAME or NAME:PATH")
    root = Path(path).expanduser() if sep else None
    options: dict[str, Any] = {}
    if name == "imagefolder" and root is not None:
        flat = _flat_folder_size(root)
        if flat:
            options["per_class"] = flat
    split = "train"
    total = info(name, root=root, split=split, **options).num_images
    n = None if max_images is None or max_images >= total else max_images
    images, _ = load(name, root=root, size=image_size, n=n, seed=seed, split=split,
                     channels=channels, **options)
    where = f" from {root}" if root is not None else ""
    return images, f"{name}{where} (split {split!r}, {len(images)} of {total} images)"
