"""The attacker's auxiliary images: a dataset name, a tensor, or ``(images, labels)``.

Learning to Invert (Wu et al., UAI 2023) assumes the server holds data from the clients'
distribution (or a shifted one, their Table 2). Labels, when given, are used to compute the
training gradients; without them each training image gets a uniformly random label.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradleak.errors import ConfigError, DataError

__all__ = ["AuxData", "check_images", "random_shift", "resolve_aux"]

AuxData = Tensor | tuple[Tensor, Tensor] | str


def check_images(images: Any, labels: Any, what: str) -> tuple[Tensor, Tensor | None]:
    """Validates (N, C, H, W) images in [0, 1] and optional (N,) labels.

    Raises:
        DataError: shapes, dtypes or values are wrong.
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise DataError(f"{what} must be float (N, C, H, W) images in [0, 1]")
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise DataError(f"{what} must be finite and lie in [0, 1]")
    if labels is not None:
        if (not isinstance(labels, Tensor) or labels.dim() != 1
                or labels.is_floating_point() or len(labels) != len(images)):
            raise DataError(f"{what}: labels must be an integer (N,) tensor, one per image")
        labels = labels.long()
    return images.detach().float().contiguous(), labels


def resolve_aux(aux: AuxData, model: nn.Module, *, split: str = "train", seed: int = 0
                ) -> tuple[Tensor, Tensor | None]:
    """Images (and labels, if known) of the auxiliary data.

    Args:
        aux: a ``gl.data`` dataset name (loaded at the model's input size and channels, which
            a zoo model records), a tensor of images, or ``(images, labels)``.
        model: the target model (its zoo spec gives the image shape for a dataset name).
        split: the dataset split to read for a name.
        seed: seed of the dataset's ordering.
    """
    if isinstance(aux, str):
        spec = getattr(model, "gradleak_spec", None)
        shape = (spec or {}).get("kwargs", {}).get("in_shape")
        if not shape or len(shape) != 3 or shape[1] != shape[2]:
            raise ConfigError(
                f"cannot tell the image size for dataset {aux!r} from this model; pass the "
                "images as a tensor instead"
            )
        import gradleak.data as gdata

        images, labels = gdata.load(aux, size=int(shape[1]), n=None, split=split, seed=seed,
                                    channels=int(shape[0]))
        return check_images(images, labels, f"dataset {aux!r}")
    if isinstance(aux, tuple) and len(aux) == 2:
        return check_images(aux[0], aux[1], "aux")
    return check_images(aux, None, "aux")


def random_shift(images: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translates every image by a random offset in [-max_shift, max_shift] per axis.

    The image is padded by replicating its edge pixels and cropped back to its size, so the
    values stay in [0, 1]. Works on any (..., C, H, W) batch.

    Example:
        >>> x = torch.arange(9.0).view(1, 1, 3, 3) / 8
        >>> random_shift(x, 0, torch.Generator()).equal(x)
        True
    """
    if max_shift <= 0:
        return images
    *lead, c, h, w = images.shape
    flat = images.reshape(-1, c, h, w)
    k = max_shift
    padded = nn.functional.pad(flat, (k, k, k, k), mode="replicate")
    offsets = torch.randint(0, 2 * k + 1, (flat.shape[0], 2), generator=generator).tolist()
    out = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])
    return out.view(*lead, c, h, w)
