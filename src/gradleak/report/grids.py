"""PNG grids of images: truth above reconstruction, in matched order, with captions.

Everything here works on (N, C, H, W) tensors in [0, 1] and draws with Pillow (no
matplotlib), so the output is deterministic and cheap.

Example:
    >>> import torch
    >>> from gradleak.report.grids import save_grid
    >>> x = torch.rand(2, 3, 8, 8)
    >>> save_grid("grid.png", x, truth=x)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from gradleak.safeio import write_with

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
PAD = 4


def font(size: int = 12) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled default font at ``size`` pixels (no system font needed)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # very old Pillow or no FreeType: bitmap font
        return ImageFont.load_default()


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, H, W, 3) uint8; non-RGB images are shown in grey."""
    x = images.detach().to("cpu", torch.float32)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    x = torch.nan_to_num(x, nan=0.0).clamp(0, 1)
    if x.shape[1] != 3:  # grey (or unusual channel counts): show the channel mean
        x = x.mean(1, keepdim=True).repeat(1, 3, 1, 1)
    arr = (x.permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    return arr


def scale_for(height: int, target: int = 96) -> int:
    """Integer nearest-neighbour upscale factor that brings ``height`` to about ``target``."""
    return max(1, round(target / max(height, 1)))


def upscale(tile: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of an (H, W, 3) array by an integer ``factor``."""
    if factor == 1:
        return tile
    return tile.repeat(factor, axis=0).repeat(factor, axis=1)


def match_order(truth: Tensor, images: Tensor) -> list[int]:
    """For each truth image, the index of the reconstruction assigned to it.

    Uses :func:`gradleak.metrics.match` (Hungarian assignment on pairwise MSE), the pairing
    :func:`gradleak.evaluate` scores, so the grid shows each true image above the
    reconstruction it is scored against. Truth images left unmatched (fewer
    reconstructions than truth images) get ``-1``.
    """
    from gradleak.metrics import match

    if len(truth) <= len(images):
        return [int(j) for j in match(truth, images)]
    order = [-1] * len(truth)
    for i, j in enumerate(match(images, truth).tolist()):
        order[j] = i
    return order


def psnr_per_image(truth: Tensor, images: Tensor) -> list[float]:
    """PSNR in dB of each pair (:func:`gradleak.metrics.psnr`); ``inf`` for identical images."""
    from gradleak.metrics import psnr

    return [float(v) for v in psnr(images.detach().clamp(0, 1), truth.detach().clamp(0, 1))]


def compose(
    rows: Sequence[np.ndarray],
    *,
    row_names: Sequence[str] | None = None,
    captions: Sequence[Sequence[str]] | None = None,
    title: str | None = None,
    target: int = 96,
    max_cols: int = 8,
) -> Image.Image:
    """Lays out rows of (N, H, W, 3) uint8 images as one picture.

    Args:
        rows: one array per row; all share H and W.
        row_names: a label drawn left of each row.
        captions: per row, one caption per image (drawn under it).
        title: a line drawn above the grid.
        target: tiles are upscaled (nearest neighbour) to about this many pixels high.
        max_cols: long rows wrap after this many images.

    Returns:
        The RGB picture.
    """
    if not rows:
        raise ValueError("compose() needs at least one row")
    h, w = rows[0].shape[1:3]
    k = scale_for(h, target)
    th, tw = h * k, w * k
    f = font(12)
    n = max(len(r) for r in rows)
    cols = max(1, min(n, max_cols))
    wraps = (n + cols - 1) // cols
    name_w = 0
    if row_names:
        name_w = max(int(f.getlength(s)) for s in row_names) + 2 * PAD
    cap_h = 16 if captions else 0
    title_h = 20 if title else 0
    row_h = th + cap_h + PAD
    width = name_w + cols * (tw + PAD) + PAD
    height = title_h + wraps * len(rows) * row_h + PAD * (wraps + 1)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((PAD, 3), title, fill=TEXT, font=font(14))
    for wrap in range(wraps):
        for r, row in enumerate(rows):
            y = title_h + PAD + (wrap * len(rows) + r) * row_h + wrap * PAD
            if row_names:
                draw.text((PAD, y + th // 2 - 6), row_names[r], fill=TEXT, font=f)
            for c in range(cols):
                i = wrap * cols + c
                if i >= len(row):
                    continue
                x = name_w + PAD + c * (tw + PAD)
                canvas.paste(Image.fromarray(upscale(row[i], k)), (x, y))
                if captions and i < len(captions[r]) and captions[r][i]:
                    text = captions[r][i]
                    tx = x + max(0, (tw - int(f.getlength(text))) // 2)
                    draw.text((tx, y + th + 2), text, fill=TEXT, font=f)
    return canvas


def _label_caption(prefix: str, labels: Tensor | None, i: int) -> str:
    if labels is None or i < 0 or i >= len(labels):
        return ""
    return f"{prefix}{int(labels[i])}"


def grid_image(
    images: Tensor,
    truth: Tensor | None = None,
    *,
    labels: Tensor | None = None,
    truth_labels: Tensor | None = None,
    title: str | None = None,
    match: bool = True,
) -> Image.Image:
    """The truth-vs-reconstruction picture (see :func:`save_grid`)."""
    if truth is None:
        caps = [[_label_caption("label ", labels, i) for i in range(len(images))]]
        return compose([to_uint8(images)], row_names=["reconstruction"], captions=caps,
                       title=title)
    order = match_order(truth, images) if match else list(range(len(truth)))
    blank = torch.ones_like(truth[:1])
    matched = torch.cat([images[j : j + 1] if j >= 0 else blank for j in order])
    psnrs = psnr_per_image(truth, matched)
    truth_caps = [_label_caption("label ", truth_labels, i) for i in range(len(truth))]
    rec_caps = []
    for i, j in enumerate(order):
        parts = [] if j < 0 else [f"{psnrs[i]:.1f} dB"]
        lab = _label_caption("", labels, j)
        if lab:
            parts.append(f"label {lab}")
        rec_caps.append(", ".join(parts))
    return compose(
        [to_uint8(truth), to_uint8(matched)],
        row_names=["truth", "reconstruction"],
        captions=[truth_caps, rec_caps],
        title=title,
    )


def save_grid(
    path: str | Path,
    images: Tensor,
    truth: Tensor | None = None,
    *,
    labels: Tensor | None = None,
    truth_labels: Tensor | None = None,
    title: str | None = None,
    match: bool = True,
) -> Path:
    """Writes a PNG with the true images above their matched reconstructions.

    Reconstructions are reordered by Hungarian matching on MSE (:func:`match_order`) and
    captioned with their PSNR and recovered label; without ``truth`` only the
    reconstructions are drawn.

    Args:
        path: the PNG to write (folders are created).
        images: reconstructed images (N, C, H, W) in [0, 1].
        truth: the true images (M, C, H, W) in [0, 1], or None.
        labels: recovered labels (N,), or None.
        truth_labels: true labels (M,), or None.
        title: a line drawn above the grid.
        match: reorder reconstructions to their matched truth (else keep the given order).

    Returns:
        The path written.
    """
    picture = grid_image(images, truth, labels=labels, truth_labels=truth_labels, title=title,
                         match=match)
    return write_with(path, lambda f: picture.save(f, format="PNG"))
