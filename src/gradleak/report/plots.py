"""Matplotlib plots for reports (Agg canvas, no pyplot state): the loss curve.

Example:
    >>> from gradleak.report.plots import save_loss_plot
    >>> save_loss_plot("loss.png", rec.trace)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gradleak.safeio import write_with
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
    return write_with(path, lambda f: fig.savefig(f, format="png"))
