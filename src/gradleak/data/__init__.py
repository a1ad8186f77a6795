"""Data for experiments: bundled photos and local-path readers; nothing is downloaded.

Datasets (see :func:`available`):

* ``sample``: 40 real photographs bundled with the package (10 classes x 4 distinct crops,
  32x32 and 64x64), from images that scikit-image and scikit-learn ship.
* ``holdout``: 30 crops of other regions of the same photos (same 10 classes), cut at load
  time, that no ``sample`` image overlaps.
* ``cifar10``, ``cifar100`` (fine labels): the official python pickle batches.
* ``mnist``, ``fashion_mnist``: the official IDX files, plain or ``.gz``.
* ``imagefolder`` (``root/<class>/*.jpg``) and ``flowers17`` (Oxford 17 Flowers layout).
* offline domains for generative priors, each with ``split="train"|"holdout"``
  (:mod:`gradleak.data.domains`): ``digits`` (scikit-learn 8x8 digits, upsampled, grey),
  ``faces`` (scikit-image ``lfw_subset`` faces, grey), ``patches`` (random crops of the
  bundled source photos, RGB, split by photo).

Example:
    >>> import gradleak as gl
    >>> images, labels = gl.data.load("sample", size=32, n=8, seed=0)
    >>> images.shape, float(images.min()) >= 0.0, float(images.max()) <= 1.0
    (torch.Size([8, 3, 32, 32]), True, True)
    >>> _, labels = gl.data.load("sample", n=4, labels=[0, 0, 0, 3])   # repeated labels
    >>> labels.tolist()
    [0, 0, 0, 3]
"""

from gradleak.data import bundled, cifar, domains, folder, mnist  # noqa: F401  (registration)
from gradleak.data.base import (
    DATA_ROOT_ENV,
    DATASETS,
    Dataset,
    DatasetInfo,
    Pool,
    available,
    info,
    load,
    register_dataset,
    select,
)
from gradleak.data.cifar import read_batch
from gradleak.data.mnist import read_idx

__all__ = [
    "DATASETS",
    "DATA_ROOT_ENV",
    "Dataset",
    "DatasetInfo",
    "Pool",
    "available",
    "info",
    "load",
    "read_batch",
    "read_idx",
    "register_dataset",
    "select",
]
