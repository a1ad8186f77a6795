"""The permutation-invariant training loss for batches of B > 1 images.

A batch gradient is the mean of its B per-example gradients, so it does not say which output
slot should hold which image. Learning to Invert (Wu et al., UAI 2023, Sec. 4) therefore
matches the B predicted images to the B targets with the Hungarian algorithm on the pairwise
MSE and trains on the matched pairs: the loss of one group is

    min over permutations pi of (1/B) sum_b MSE(pred_b, target_pi(b)),

found exactly by ``scipy.optimize.linear_sum_assignment`` (Kuhn, 1955) on the detached cost
matrix; the gradient flows through the matched MSEs.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from gradleak.errors import ConfigError

__all__ = ["hungarian_mse", "pairwise_group_mse"]


def pairwise_group_mse(pred: Tensor, target: Tensor) -> Tensor:
    """MSE between every predicted and every target image of each group.

    Args:
        pred: (N, B, ...) predictions, N groups of B images.
        target: (N, B, ...) targets.

    Returns:
        (N, B, B): entry (n, i, j) is the mean squared error of ``pred[n, i]`` vs
        ``target[n, j]``.
    """
    if pred.shape != target.shape or pred.dim() < 2:
        raise ConfigError(
            f"predictions {tuple(pred.shape)} and targets {tuple(target.shape)} must both be "
            "(groups, B, ...)"
        )
    p = pred.flatten(2)
    t = target.flatten(2)
    return (p.unsqueeze(2) - t.unsqueeze(1)).pow(2).mean(-1)


def hungarian_mse(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Mean over groups of the best-permutation MSE (see the module docstring).

    Args:
        pred: (N, B, ...) predictions.
        target: (N, B, ...) targets.

    Returns:
        ``(loss, assignment)``: the scalar loss, differentiable in ``pred``, and an int64
        (N, B) tensor whose row n maps output slot b to its matched target index.

    Example:
        >>> t = torch.rand(1, 3, 4)
        >>> loss, assign = hungarian_mse(t[:, [2, 0, 1]], t)
        >>> float(loss), assign.tolist()
        (0.0, [[2, 0, 1]])
    """
    cost = pairwise_group_mse(pred, target)
    n, b = cost.shape[:2]
    if b == 1:
        return cost[:, 0, 0].mean(), torch.zeros(n, 1, dtype=torch.int64)
    c = cost.detach().to("cpu", torch.float64).numpy()
    assign = np.empty((n, b), dtype=np.int64)
    for i in range(n):
        rows, cols = linear_sum_assignment(c[i])
        assign[i, rows] = cols
    idx = torch.from_numpy(assign).to(cost.device)
    matched = cost.gather(2, idx.unsqueeze(-1)).squeeze(-1)  # (N, B)
    return matched.mean(), idx.cpu()
