"""The picture of the bias attack's batch-2 ambiguity (:mod:`gradleak.experiments.ambiguity`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gradleak.report.files import save_figure

if TYPE_CHECKING:
    from gradleak.experiments.ambiguity import Batch2Ambiguity


def write_ambiguity_png(amb: Batch2Ambiguity, path: str | Path, *, examples: int = 5) -> Path:
    """Draws the ambiguity: the two inputs, rows at several mixing weights, the average, and
    the histogram of the weights. Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inside = torch.nonzero((amb.weights >= 0) & (amb.weights <= 1)).flatten()
    pool = inside if len(inside) >= examples else torch.arange(len(amb.weights))
    order = pool[torch.argsort(amb.weights[pool])]
    picks = order[torch.linspace(0, len(order) - 1, examples).round().long()]

    def show(ax: plt.Axes, img: Tensor, title: str) -> None:
        ax.imshow(img.detach().clamp(0, 1).permute(1, 2, 0).squeeze().cpu().numpy(),
                  cmap="gray" if img.shape[0] == 1 else None)
        ax.set_title(title, fontsize=8)
        ax.axis("off")

    cols = examples + 3
    fig = plt.figure(figsize=(1.7 * cols, 4.2))
    grid = fig.add_gridspec(2, cols, height_ratios=[1, 1])
    show(fig.add_subplot(grid[0, 0]), amb.images[0], "input x1")
    show(fig.add_subplot(grid[0, 1]), amb.images[1], "input x2")
    for k, i in enumerate(picks.tolist()):
        show(fig.add_subplot(grid[0, 2 + k]), amb.recoveries[i],
             f"row {int(amb.rows[i])}\na={float(amb.weights[i]):.2f}")
    show(fig.add_subplot(grid[0, cols - 1]), amb.average[0],
         f"all-row average\na={amb.average_weight:.2f}")
    ax = fig.add_subplot(grid[1, :])
    w = amb.weights.clamp(-1, 2).cpu().numpy()
    ax.hist(w, bins=60, color="tab:blue")
    ax.axvline(0, color="k", lw=0.8)
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xlabel("row recovery = a * x1 + (1 - a) * x2  (a clipped to [-1, 2])")
    ax.set_ylabel("rows")
    ax.set_title(
        f"{amb.pure_rows} rows give one input exactly, {amb.convex_rows} are convex mixes, "
        f"{amb.extrapolated_rows} extrapolate; max distance from the line "
        f"{float(amb.fit_residual.max()):.1e}",
        fontsize=9,
    )
    fig.tight_layout()
    out = save_figure(path, fig, dpi=110)
    plt.close(fig)
    return out
