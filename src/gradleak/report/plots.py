"""Matplotlib plots for reports (Agg canvas, no pyplot state): the loss curve.

Example:
    >>> from gradleak.report.plots import save_loss_plot
    >>> save_loss_plot("loss.png", rec.trace)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gradleak.report.files import save_figure
from gradleak.types import Trace


def loss_matrix(losses: Sequence[Sequence[float]] | Sequence[float]) -> np.ndarray:
    """The trace's losses as an (iterations, restarts) float array (NaN where missing)."""
    rows = [list(r) if isinstance(r, Sequence | np.ndarray) else [r] for r in losses]
    if not rows:
        return np.zeros((0, 1))
    width = max(len(r) for r in rows) or 1
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = [float(v) for v in r]
    return out


def save_loss_plot(
    path: str | Path,
    trace: Trace,
    *,
    title: str = "gradient-matching loss",
    logy: bool | None = None,
) -> Path | None:
    """Writes a PNG of the loss per iteration, one line per restart (the chosen one bold).

    Args:
        path: the PNG to write (folders are created).
        trace: the reconstruction's trace.
        title: the plot title.
        logy: log-scale the y axis (default: when every finite loss is positive).

    Returns:
        The path written, or None when the trace holds no losses (closed-form attacks).
    """
    data = loss_matrix(trace.losses)
    if data.size == 0 or not np.isfinite(data).any():
        return None
    fig = Figure(figsize=(6, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.arange(data.shape[0])
    best = trace.best_restart if 0 <= trace.best_restart < data.shape[1] else 0
    for r in range(data.shape[1]):
        chosen = r == best
        ax.plot(
            x,
            data[:, r],
            lw=1.8 if chosen else 0.8,
            alpha=1.0 if chosen else 0.5,
            label=f"restart {r}" + (" (chosen)" if chosen else ""),
            zorder=3 if chosen else 2,
        )
    finite = data[np.isfinite(data)]
    if logy is None:
        logy = bool(finite.size) and float(finite.min()) > 0
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if data.shape[1] > 1:
        ax.legend(fontsize=8, ncol=min(4, math.ceil(data.shape[1] / 2)))
    fig.tight_layout()
    return save_figure(path, fig)


def save_curves(
    path: str | Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float | None]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    xscale: str = "linear",
    ylim: tuple[float, float] | None = None,
    hline: tuple[float, str] | None = None,
) -> Path:
    """Writes a PNG with one line per series (``{name: (xs, ys)}``; None/NaN points skipped).

    Args:
        path: the PNG to write.
        series: the lines.
        xlabel: x axis label.
        ylabel: y axis label.
        title: the plot title.
        xscale: ``"linear"``, ``"log"`` or ``"log2"``.
        ylim: y range, or None.
        hline: a dashed reference line ``(y, label)``, or None.

    Returns:
        The path written.
    """
    fig = Figure(figsize=(6.4, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, (xs, ys) in series.items():
        pts = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)
               if y is not None and math.isfinite(float(y))]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    if xscale == "log2":
        ax.set_xscale("log", base=2)
    elif xscale == "log":
        ax.set_xscale("log")
    if hline is not None:
        ax.axhline(hline[0], color="gray", ls="--", lw=1, label=hline[1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(path, fig)


def save_series_plot(
    path: str | Path,
    series: Mapping[str, tuple[list[int], list[float | None]]],
    *,
    ylabel: str,
    title: str,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """:func:`save_curves` against the batch size on a log2 axis (batch-discard's plots)."""
    return save_curves(path, dict(series), xlabel="batch size", ylabel=ylabel, title=title,
                       xscale="log2", ylim=ylim)
