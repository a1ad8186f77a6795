"""SPEAR's factorisation ``dL/dW = M V^T`` and its noise model (Dimitrov et al., NeurIPS 2024).

Everything here runs in float64 whatever the observation's dtype. The noise of every row of
``M`` is *measured* from the gradient itself: an exact rank-``B`` gradient has no component
outside its row space, so what lies there is rounding error of the client's arithmetic
(float32: about 1e-7 of the row, float64: about 1e-16), and the thresholds of the search are
multiples of it rather than constants tuned on one model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.errors import ThreatModelError

F64 = torch.float64


@dataclass
class LowRank:
    """``dL/dW = M V^T`` truncated to the batch's rank.

    Attributes:
        m: (out, B) left factor ``U S``.
        v: (in, B) orthonormal right factor (the inputs lie in its span).
        rank: B.
        noise: absolute noise level of one entry of ``M q`` (``q`` a unit vector), estimated
            from the first discarded singular value (or the rounding level)
        row_noise: (out,) noise of ``m_r . q`` row by row, measured from the part of each
            gradient row outside the rank-B row space (pure rounding error for an exact
            rank-B gradient): ``|g_r - m_r V^T| / sqrt(in - B)``.
    """

    m: Tensor
    v: Tensor
    rank: int
    noise: float
    row_noise: Tensor


def low_rank(
    weight_grad: Tensor, batch_size: int | None, rank_tol: float, generator: torch.Generator
) -> LowRank:
    """Truncated SVD of the first layer's weight gradient (float64).

    A randomised range finder (Halko, Martinsson & Tropp, 2011) with oversampling and two
    power iterations: the gradient has rank B, so a sketch of ``B + 16`` columns captures it
    to machine precision at a fraction of the cost of a full SVD. When the batch size is not
    shared the sketch grows until the spectrum has dropped below ``rank_tol``.
    """
    g = weight_grad.detach().to(F64).reshape(weight_grad.shape[0], -1)
    m, n = g.shape
    size = min(m, n, (batch_size or 32) + 16)
    while True:
        omega = torch.randn(n, size, generator=generator, dtype=F64)
        y = g @ omega
        for _ in range(2):
            y, _ = torch.linalg.qr(y)
            y = g @ (g.T @ y)
        basis, _ = torch.linalg.qr(y)
        _, s, vh = torch.linalg.svd(basis.T @ g, full_matrices=False)
        if batch_size is not None or size >= min(m, n) or s[-1] <= rank_tol * s[0]:
            break
        size = min(m, n, 2 * size)
    numerical = int((s > rank_tol * s[0]).sum()) if s[0] > 0 else 0
    rank = batch_size if batch_size is not None else numerical
    rank = min(rank, numerical)
    if rank < 1:
        raise ThreatModelError("a non-zero gradient of the first layer")
    eps = torch.finfo(weight_grad.dtype).eps
    # the discarded spectrum is noise; a noise matrix with i.i.d. entries of size e has
    # spectral norm about e (sqrt(m) + sqrt(n)), and m_r . q carries about e of it
    tail = float(s[rank]) if rank < len(s) else 0.0
    noise = max(tail, float(s[0]) * eps) / (math.sqrt(m) + math.sqrt(n))
    v = vh[:rank].T
    proj = g @ v
    resid = (g - proj @ v.T).norm(dim=1)
    row_noise = resid / math.sqrt(max(n - rank, 1))
    return LowRank(proj, v, rank, noise, row_noise)



def unique_directions(q: Tensor, tol: float = 1e-6) -> Tensor:
    """Unit rows of ``q`` with duplicates (up to sign, ``|cos| > 1 - tol``) removed."""
    if len(q) == 0:
        return q
    q = q / q.norm(dim=1, keepdim=True)
    q = q[torch.isfinite(q).all(dim=1)]
    close = (q @ q.T).abs() > 1 - tol
    first = torch.argmax(close.to(torch.int8), dim=1)  # first duplicate of each row
    return q[first == torch.arange(len(q))]


def parallel_groups(rows: Tensor, tol: Tensor) -> tuple[Tensor, int]:
    """Group index of every unit row; rows parallel (either sign) up to their noise share one.

    Rows ``r, s`` are parallel when ``|m_r -+ m_s| <= 3 (tol_r + tol_s)`` (floored at 1e-7,
    the resolution of the cosine).
    """
    cos = (rows @ rows.T).abs().clamp(max=1.0)
    dist = (2 - 2 * cos).clamp_min(0).sqrt()
    close = dist <= (3 * (tol[:, None] + tol[None, :])).clamp_min(1e-7)
    first = torch.argmax(close.to(torch.int8), dim=1)
    _, group = torch.unique(first, return_inverse=True)
    return group, int(group.max()) + 1 if len(group) else 0
