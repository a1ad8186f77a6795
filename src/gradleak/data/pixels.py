"""Pixel utilities shared by the dataset readers: channels, resizing, PIL conversion."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from gradleak.errors import ConfigError


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
