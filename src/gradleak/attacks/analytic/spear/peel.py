"""Peeling: exact inputs from rows that one remaining sample alone activates.

In SPEAR's notation (Dimitrov et al., NeurIPS 2024; ``dL/dW = M V^T``, ``x = V y``), a row
``r`` that only sample ``u`` activates is the bias attack's situation (Phong et al., 2017):
``m_r = dz_ru y_u`` and ``dL/db_r = dz_ru``, so ``y_u = m_r / (dL/db)_r`` exactly. Such rows
are rare in a large batch, but every sample whose input is known can be *subtracted*
(``M -= dz_u y_u^T``, ``dL/db -= dz_u``), and the residual is the gradient of a smaller batch,
in which more rows are single-sample rows. Every row is tried: its ratio is a candidate input,
whose ReLU activation pattern must equal the zero pattern of a found direction (then the
input of that sample is known exactly, and ``dz_u = λ_u M a_u`` with ``λ_u`` from the row),
or must leave a one-dimensional null space among the rows it zeroes (then it proposes an
unfound direction, which the search's classification and pattern filter still check). A row
active for several samples gives a mixed ratio whose pattern matches nothing and is dropped.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradleak.attacks.analytic.spear.factorisation import F64
from gradleak.attacks.analytic.spear.search import DirectionSearch


def residual(search: DirectionSearch, bias_grad: Tensor) -> tuple[Tensor, Tensor]:
    """Live rows of ``M`` and ``dL/db`` minus the contributions of the known inputs."""
    m = search.m_live.clone()
    gb = bias_grad.to(F64)[search.rows].clone()
    for y, dz in search.known.values():
        m -= dz[:, None] * y[None, :]
        gb -= dz
    return m, gb


def peel(search: DirectionSearch, bias_grad: Tensor, limit: int = 1024) -> Tensor:
    """:func:`peel_once` until no further input becomes known; returns its last candidates."""
    while True:
        before = len(search.known)
        out = peel_once(search, bias_grad, limit)
        if len(search.known) == before or search.out_of_time():
            return out


def peel_once(search: DirectionSearch, bias_grad: Tensor, limit: int = 1024) -> Tensor:
    """Learns the inputs of found directions it can; returns candidate new directions.

    Args:
        search: the search state; ``search.known`` is extended in place.
        bias_grad: (out,) gradient of the first layer's bias.
        limit: candidate rows tried per call at most (the best explained first).

    Returns:
        (K, b) raw candidate directions for :meth:`DirectionSearch.process`.
    """
    empty = torch.zeros(0, search.b, dtype=F64)
    m, gb = residual(search, bias_grad)
    norms = search.m_live.norm(dim=1)
    left = m.norm(dim=1) > 3 * search.tol * norms  # rows with something unexplained
    idx = torch.nonzero(left & (gb.abs() > search.tol * gb.abs().max())).flatten()
    if len(idx) == 0:
        return empty
    idx = idx[torch.argsort(gb[idx].abs() / norms[idx], descending=True, stable=True)][:limit]
    y = m[idx] / gb[idx, None]  # (K, b) candidate inputs
    live_w, live_b = search.pre_w[search.rows], search.pre_b[search.rows]
    masks = (y @ live_w.T + live_b) <= 0  # (K, live)
    matched = torch.zeros(len(idx), dtype=torch.bool)
    for j, d in enumerate(search.found):
        if j in search.known:
            continue
        zeros = d.zeros[search.rows]
        hit = torch.nonzero((masks == zeros[None]).all(dim=1)).flatten()
        matched[hit] = True
        if len(hit) == 0:
            continue
        k = int(hit[0])
        r = int(idx[k])
        col = search.m_live @ d.q  # dz_j / λ_j over the live rows
        if float(col[r].abs()) <= float(search.tol[r] * norms[r]):
            continue
        search.known[j] = (y[k].clone(), col * (gb[r] / col[r]))
    keep = ~matched & (masks.sum(dim=1) >= search.b - 1)
    if not bool(keep.any()) or len(search.found) >= search.b:
        return empty
    _, vec, nullity = search.null_spaces(masks[keep])
    return vec[nullity == 1][:, :, 0]
