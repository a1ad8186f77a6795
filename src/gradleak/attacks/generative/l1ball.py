"""Euclidean projection onto the l1 ball, row by row (GIFD's feature-domain constraint).

For a row ``v`` and radius ``r``, the projection is ``sign(v) * max(|v| - theta, 0)`` with
``theta >= 0`` the smallest value whose result has l1 norm at most ``r`` (``theta = 0`` when
``v`` is already inside). ``theta`` is found by sorting ``|v|`` (Duchi, Shalev-Shwartz,
Singer & Chandra, "Efficient Projections onto the l1-Ball for Learning in High Dimensions",
ICML 2008, Fig. 1), vectorised over rows.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["project_l1_ball"]


def project_l1_ball(v: Tensor, radius: Tensor | float) -> Tensor:
    """Projects every row of ``v`` (N, D) onto the l1 ball of its radius.

    Args:
        v: rows to project, (N, D).
        radius: one radius (>= 0) for all rows, or one per row (N,).

    Returns:
        The projected rows, (N, D).

    Example:
        >>> project_l1_ball(torch.tensor([[3.0, -1.0]]), 2.0)
        tensor([[ 2.,  0.]])
    """
    r = torch.as_tensor(radius, dtype=v.dtype, device=v.device).expand(v.shape[0])
    a = v.abs()
    inside = a.sum(-1) <= r
    u, _ = torch.sort(a, dim=-1, descending=True)
    css = u.cumsum(-1) - r[:, None]
    idx = torch.arange(1, v.shape[1] + 1, device=v.device, dtype=v.dtype)
    cond = u - css / idx > 0
    rho = cond.to(v.dtype).cumsum(-1).argmax(-1, keepdim=True)  # last index where cond holds
    theta = (css.gather(-1, rho) / (rho + 1).to(v.dtype)).clamp_min(0)
    out = v.sign() * (a - theta).clamp_min(0)
    return torch.where(inside[:, None], v, out)
