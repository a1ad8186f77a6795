"""Candidate directions for SPEAR's search (Dimitrov et al., NeurIPS 2024).

* :func:`spear_samples`: the paper's proposals, null vectors of ``B - 1`` random rows of ``M``;
* :func:`reweighted`: reweighted least squares ``min sum_r |m_r . q|^p`` subject to
  ``m_r0 . q = 1`` for a pivot row ``r0`` (the sparse-vector formulation of Spielman, Wang &
  Wright, COLT 2012), with pivots (:func:`pivot_rows`) that avoid directions found so far;
* :func:`complete_last`: the last direction once ``B - 1`` are known.

All draw their randomness from the search's seeded generator, so a run is reproducible.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradleak.attacks.analytic.spear.factorisation import F64
from gradleak.attacks.analytic.spear.search import DirectionSearch


def spear_samples(search: DirectionSearch, count: int) -> Tensor:
    """SPEAR's proposals: null vectors of ``B - 1`` random rows, kept if sparse."""
    b, n = search.b, search.mh.shape[0]
    if b == 1:
        return torch.ones(1, 1, dtype=F64)
    idx = search.subsets(count, n, b - 1)
    sub = search.mh[idx]  # (count, b-1, b)
    qfull, _ = torch.linalg.qr(sub.transpose(1, 2), mode="complete")
    q = qfull[:, :, -1]  # (count, b)
    zeros = ((q @ search.mh.T).abs() <= search.loose).sum(dim=1)
    return q[zeros >= b + max(2, b // 4)]


def pivot_rows(search: DirectionSearch, count: int) -> Tensor:
    """Pivot rows for the reweighted search, preferring rows active on no found sample."""
    n = search.mh.shape[0]
    if search.found:
        active_found = torch.stack([~d.zeros[search.rows] for d in search.found]).sum(0)
    else:
        active_found = torch.zeros(n, dtype=torch.long)
    jitter = torch.rand(n, generator=search.gen)
    order = torch.argsort(active_found.to(F64) + jitter)
    return order[:count]


def reweighted(search: DirectionSearch, pivots: Tensor, iterations: int, p: float) -> Tensor:
    """``min sum_r |m_r . q|^p`` s.t. ``m_pivot . q = 1`` by reweighted least squares."""
    a = search.mh[pivots]  # (K, b)
    gram = search.mh.T @ search.mh
    ridge = 1e-10 * float(gram.diagonal().mean()) * torch.eye(search.b, dtype=F64)
    q = torch.linalg.solve(gram + ridge, a.T).T
    q = q / (a * q).sum(1, keepdim=True)
    eps = torch.full((len(pivots), 1), 0.3, dtype=F64)
    for _ in range(iterations):
        if search.out_of_time():
            break
        r = (q @ search.mh.T).abs()
        w = (r**2 + eps**2).pow(p / 2 - 1)
        g = torch.einsum("kr,ri,rj->kij", w, search.mh, search.mh)
        g = g + 1e-12 * g.diagonal(dim1=1, dim2=2).mean(1)[:, None, None] * torch.eye(search.b)
        q = torch.linalg.solve(g, a.unsqueeze(-1)).squeeze(-1)
        q = q / (a * q).sum(1, keepdim=True)
        eps = (eps * 0.5).clamp_min(float(search.tol.median()))
    return q / q.norm(dim=1, keepdim=True)


def complete_last(search: DirectionSearch) -> Tensor:
    """Candidates for the one missing direction when ``B - 1`` are known.

    The missing sample's input is ``x = t V w`` with ``w`` orthogonal to the known
    directions (``X^T = Λ^{-1} A^{-1} V^T``) and an unknown scale ``t``; its inactive
    neurons ``{r : t (P w)_r + b_r <= 0}`` change only at the breakpoints ``t_r``. Along
    ``t`` the Gram matrix of the rows it zeroes is a running sum, so every pattern is
    tested at once; patterns whose rows leave a one-dimensional null space give the
    direction.
    """
    if search.completion_tried == len(search.found):
        return torch.zeros(0, search.b, dtype=F64)
    search.completion_tried = len(search.found)
    known = torch.stack([d.q for d in search.found], dim=1)  # (b, b-1)
    w = torch.linalg.svd(known.T, full_matrices=True)[2][-1]
    a_all = torch.from_numpy(search.p_hat) @ w
    c_all = torch.from_numpy(search.b_hat)
    a, c = a_all[search.rows], c_all[search.rows]
    outer = search.mh[:, :, None] * search.mh[:, None, :]  # (n, b, b)
    out: list[Tensor] = []
    for sign in (1.0, -1.0):
        aa = sign * a
        inactive0 = c <= 0  # just above t = 0
        gram0 = outer[inactive0].sum(0)
        with torch.no_grad():
            brk = -c / aa
        order = torch.argsort(brk)
        order = order[brk[order] > 0]
        if len(order) == 0:
            continue
        # at t_r, a row with a_r > 0 turns active (leaves), with a_r < 0 turns inactive
        delta = torch.where(aa[order] > 0, -1.0, 1.0).to(F64)
        grams = gram0 + torch.cumsum(delta[:, None, None] * outer[order], dim=0)
        lam, vec = torch.linalg.eigh(grams)
        ratio = lam[:, 0].clamp_min(0) / lam[:, 1].clamp_min(1e-300)
        best = torch.argsort(ratio)[:4]
        out.append(vec[best, :, 0])
    return torch.cat(out) if out else torch.zeros(0, search.b, dtype=F64)
