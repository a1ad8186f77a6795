"""Animated GIFs of reconstruction progress, from ``Reconstruction.trace.snapshots``.

Each frame shows the snapshot images (the chosen restart) at one logged iteration, captioned
with that iteration; the true images are shown alongside when given. Frames are written with
Pillow, one per snapshot (subsampled evenly above ``max_frames``), looping forever.

Example:
    >>> from gradleak.report.gifs import save_progress_gif
    >>> save_progress_gif("progress.gif", rec, truth=truth.images)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from gradleak.report.grids import BACKGROUND, PAD, TEXT, compose, font, match_order, to_uint8
from gradleak.safeio import write_with
from gradleak.types import Reconstruction


@dataclass(frozen=True)
class GifPanel:
    """One reconstruction in a side-by-side GIF.

    Attributes:
        rec: the reconstruction whose ``trace.snapshots`` are animated.
        caption: text under the panel, e.g. ``"cosine: PSNR 18.2 dB"``.
    """

    rec: Reconstruction
    caption: str


def frame_indices(n: int, max_frames: int) -> list[int]:
    """Evenly spaced indices into ``n`` snapshots, at most ``max_frames``, always the last."""
    if n <= max_frames:
        return list(range(n))
    picks = np.linspace(0, n - 1, max_frames).round().astype(int)
    return sorted(set(picks.tolist()))


def write_gif(path: str | Path, frames: Sequence[Image.Image], *, fps: float = 8.0,
              hold_last: float = 1.5) -> Path:
    """Writes RGB frames as a looping GIF; the last frame stays ``hold_last`` seconds.

    Args:
        path: the GIF to write (folders are created).
        frames: equally sized RGB pictures; consecutive frames should differ (GIF writers
            merge identical ones).
        fps: frames per second.
        hold_last: seconds the final frame is shown.

    Returns:
        The path written.
    """
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    step = int(round(1000 / fps))
    durations = [step] * (len(frames) - 1) + [max(step, int(hold_last * 1000))]
    # adaptive palette per frame with dithering: smooth photos keep their gradients
    pal = [
        f.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT,
                                  dither=Image.Dither.FLOYDSTEINBERG)
        for f in frames
    ]
    return write_with(
        path,
        lambda f: pal[0].save(
            f,
            format="GIF",
            save_all=True,
            append_images=pal[1:],
            duration=durations,
            loop=0,
            disposal=1,
        ),
    )


def _snapshot_iterations(rec: Reconstruction) -> list[int]:
    tr = rec.trace
    its = list(tr.snapshot_iterations)
    if len(its) != len(tr.snapshots):  # tolerate a trace without matching iteration marks
        its = list(range(len(tr.snapshots)))
    return its


def progress_frames(
    rec: Reconstruction,
    truth: Tensor | None = None,
    *,
    title: str | None = None,
    max_frames: int = 60,
) -> list[Image.Image]:
    """The frames of :func:`save_progress_gif` (one per kept snapshot)."""
    snaps = rec.trace.snapshots
    if not snaps:
        raise ValueError("the reconstruction has no snapshots (trace.snapshots is empty)")
    its = _snapshot_iterations(rec)
    order = None
    if truth is not None and truth.shape[1:] == snaps[-1].shape[1:]:
        order = match_order(truth, rec.images) if rec.images.shape == snaps[-1].shape else None
    frames = []
    for i in frame_indices(len(snaps), max_frames):
        snap = snaps[i]
        if order is not None:
            snap = snap[[j for j in order if j >= 0]]
        head = f"{title + ' - ' if title else ''}iteration {its[i]}"
        if truth is not None:
            pic = compose([to_uint8(truth), to_uint8(snap)], row_names=["truth", "reconstruction"],
                          title=head)
        else:
            pic = compose([to_uint8(snap)], title=head)
        frames.append(pic)
    return frames


def save_progress_gif(
    path: str | Path,
    rec: Reconstruction,
    truth: Tensor | None = None,
    *,
    title: str | None = None,
    fps: float = 8.0,
    max_frames: int = 60,
) -> Path:
    """Writes a GIF of the reconstruction's progress (one frame per snapshot).

    Args:
        path: the GIF to write.
        rec: a reconstruction with ``trace.snapshots``.
        truth: true images (N, C, H, W) drawn above the snapshots (matched order), or None.
        title: prefix of every frame's heading (the heading always names the iteration).
        fps: frames per second.
        max_frames: snapshots beyond this are subsampled evenly (the last is kept).

    Returns:
        The path written.

    Raises:
        ValueError: the trace holds no snapshots.
    """
    frames = progress_frames(rec, truth, title=title, max_frames=max_frames)
    return write_gif(path, frames, fps=fps)


def _panel(images: Tensor, caption: str, target: int) -> Image.Image:
    body = compose([to_uint8(images)], target=target)
    f = font(13)
    cap_w = int(f.getlength(caption)) + 2 * PAD
    width = max(body.width, cap_w)
    pic = Image.new("RGB", (width, body.height + 22), BACKGROUND)
    pic.paste(body, ((width - body.width) // 2, 0))
    ImageDraw.Draw(pic).text(((width - cap_w) // 2 + PAD, body.height + 2), caption,
                             fill=TEXT, font=f)
    return pic


def side_by_side_frames(
    panels: Sequence[GifPanel],
    truth: Tensor | None = None,
    *,
    title: str | None = None,
    max_frames: int = 60,
    target: int = 128,
) -> list[Image.Image]:
    """The frames of :func:`save_side_by_side_gif`.

    The timeline is the union of the panels' snapshot iterations; at each frame a panel
    shows its latest snapshot at or before that iteration.
    """
    if not panels:
        raise ValueError("side-by-side GIF needs at least one panel")
    its_per = []
    for p in panels:
        if not p.rec.trace.snapshots:
            raise ValueError(f"panel {p.caption!r} has no snapshots")
        its_per.append(_snapshot_iterations(p.rec))
    timeline = sorted(set().union(*its_per))
    timeline = [timeline[i] for i in frame_indices(len(timeline), max_frames)]
    truth_panel = _panel(truth, "truth", target) if truth is not None else None
    frames = []
    for it in timeline:
        pics = [truth_panel] if truth_panel is not None else []
        for p, its in zip(panels, its_per, strict=True):
            k = max([i for i, s in enumerate(its) if s <= it], default=0)
            pics.append(_panel(p.rec.trace.snapshots[k], p.caption, target))
        head = f"{title + ' - ' if title else ''}iteration {it}"
        head_h = 24
        width = sum(p.width for p in pics) + PAD * (len(pics) + 1)
        height = head_h + max(p.height for p in pics) + PAD
        frame = Image.new("RGB", (width, height), BACKGROUND)
        ImageDraw.Draw(frame).text((PAD, 4), head, fill=TEXT, font=font(14))
        x = PAD
        for pic in pics:
            frame.paste(pic, (x, head_h))
            x += pic.width + PAD
        frames.append(frame)
    return frames


def save_side_by_side_gif(
    path: str | Path,
    panels: Sequence[GifPanel],
    truth: Tensor | None = None,
    *,
    title: str | None = None,
    fps: float = 8.0,
    max_frames: int = 60,
) -> Path:
    """Writes one GIF animating several reconstructions next to each other.

    Used by the demo to compare l2 and cosine gradient matching: each panel is captioned
    (e.g. with its PSNR) and the true images, when given, form the leftmost panel.

    Args:
        path: the GIF to write.
        panels: the reconstructions and their captions, left to right.
        truth: the true images shown first, or None.
        title: prefix of every frame's heading (the heading always names the iteration).
        fps: frames per second.
        max_frames: the timeline is subsampled evenly above this many frames.

    Returns:
        The path written.

    Example:
        >>> save_side_by_side_gif("l2_vs_cos.gif", [GifPanel(a, "l2: 9.8 dB"),
        ...                       GifPanel(b, "cosine: 21.3 dB")])  # doctest: +SKIP
    """
    frames = side_by_side_frames(panels, truth, title=title, max_frames=max_frames)
    return write_gif(path, frames, fps=fps)
