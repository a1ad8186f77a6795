"""The batch-of-two ambiguity of the bias attack, as data and as a picture.

With two inputs ``x1, x2`` the first layer's row ``i`` gives
``r_i = dL/dW[i, :] / dL/db[i] = a_i x1 + (1 - a_i) x2`` with ``a_i = g_i1 / (g_i1 + g_i2)``
(``g_ij = dL/dz[i, j]``): every row recovery lies on the line through the two inputs. Rows
where only one input activates the ReLU give that input exactly (``a_i`` in {0, 1}); where
``g_i1`` and ``g_i2`` have the same sign the row is a convex mix (``0 < a_i < 1``); otherwise
an extrapolation. Averaging all rows, as a batch-of-one attack does, returns one point of the
line (the least-squares mix) and discards which row saw what: the two images cannot be told
apart from the average. This is a demonstration for documentation and the CLI demo: it
knows the two images on purpose, so it is *not* an attack and lives outside the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from gradleak.attacks.analytic._common import find_first_linear, unnormalize
from gradleak.attacks.analytic.bias import least_squares_input, row_recoveries
from gradleak.errors import ConfigError
from gradleak.safeio import write_with
from gradleak.simulate import simulate
from gradleak.types import Normalization


@dataclass(frozen=True)
class Batch2Ambiguity:
    """What the bias attack sees for a batch of two, against the two true inputs.

    Attributes:
        images: the two inputs, (2, C, H, W) in [0, 1].
        rows: indices of the first-layer rows with a non-zero bias gradient.
        weights: ``a_i`` per row: the recovery is ``a_i x1 + (1 - a_i) x2``.
        fit_residual: per row, relative distance of the recovery from that line (about
            machine precision: every row lies on the line).
        recoveries: per-row recoveries as images (R, C, H, W), not clamped.
        average: the least-squares (all-rows) recovery as an image (1, C, H, W).
        average_weight: ``a`` of the average on the same line.
        pure_rows: number of rows equal to one input (``a`` in {0, 1}).
        convex_rows: number of rows strictly between the inputs (``0 < a < 1``).
        extrapolated_rows: number of rows outside the segment.
    """

    images: Tensor
    rows: Tensor
    weights: Tensor
    fit_residual: Tensor
    recoveries: Tensor
    average: Tensor
    average_weight: float
    pure_rows: int
    convex_rows: int
    extrapolated_rows: int

    def summary(self) -> dict[str, float | int]:
        """Counts and extremes for printing or JSON."""
        return {
            "rows": len(self.rows),
            "pure_rows": self.pure_rows,
            "convex_rows": self.convex_rows,
            "extrapolated_rows": self.extrapolated_rows,
            "max_fit_residual": float(self.fit_residual.max()),
            "average_weight": self.average_weight,
        }


def batch2_ambiguity(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    normalization: Normalization | None = None,
    loss: str | None = None,
    pure_tol: float = 1e-6,
) -> Batch2Ambiguity:
    """Computes the per-row mixing weights of the bias attack on a batch of two.

    Args:
        model: a model whose first layer is a biased ``nn.Linear`` (e.g. the zoo's MLP).
        images: two images (2, C, H, W) in [0, 1].
        labels: their labels (2,).
        normalization: the client's normalisation, if any.
        loss: the training loss (default: the model's).
        pure_tol: ``|a|`` or ``|1 - a|`` below this counts as a pure (single-input) row.

    Example:
        >>> model = gl.models.create("mlp", depth=2, width=256)            # doctest: +SKIP
        >>> amb = batch2_ambiguity(model, x[:2], y[:2])                    # doctest: +SKIP
        >>> amb.summary()["max_fit_residual"] < 1e-4                       # doctest: +SKIP
        True
    """
    if images.dim() != 4 or images.shape[0] != 2:
        raise ConfigError("batch2_ambiguity needs exactly two images (2, C, H, W)")
    obs, _ = simulate(model, images, labels, normalization=normalization, loss=loss)
    first = find_first_linear(obs)
    names = obs.named_update()
    gw, gb = names[f"{first.name}.weight"], names[f"{first.name}.bias"]
    rec, rows = row_recoveries(gw, gb)
    x = obs.normalize(images.to(torch.float64)).reshape(2, -1)
    # least squares r_i = a_i x1 + (1 - a_i) x2  <=>  r_i - x2 = a_i (x1 - x2)
    d = x[0] - x[1]
    weights = ((rec - x[1]) @ d) / (d @ d)
    line = weights[:, None] * x[0] + (1 - weights[:, None]) * x[1]
    fit = (rec - line).norm(dim=1) / rec.norm(dim=1).clamp_min(1e-300)
    avg = least_squares_input(gw, gb, rows)
    avg_weight = float(((avg - x[1]) @ d) / (d @ d))
    pure = (weights.abs() <= pure_tol) | ((1 - weights).abs() <= pure_tol)
    convex = ~pure & (weights > 0) & (weights < 1)
    shape = (-1, *images.shape[1:])
    return Batch2Ambiguity(
        images=images.detach().clone(),
        rows=rows,
        weights=weights,
        fit_residual=fit,
        recoveries=unnormalize(rec.reshape(shape), obs.normalization),
        average=unnormalize(avg.reshape(shape), obs.normalization),
        average_weight=avg_weight,
        pure_rows=int(pure.sum()),
        convex_rows=int(convex.sum()),
        extrapolated_rows=int((~pure & ~convex).sum()),
    )


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
    try:
        return write_with(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)
