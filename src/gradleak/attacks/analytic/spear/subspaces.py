"""Splitting subspaces spanned by several SPEAR directions, and deflation.

A candidate whose zero rows leave a null space of dimension ``s > 1`` spans ``s`` true
directions (a mixture). :func:`split` recovers them from the rows active for exactly one of
the ``s`` samples; :func:`deflate` looks for the unfound directions among the rows that no
found sample activates. Both are extensions of the SPEAR pipeline (Dimitrov et al., NeurIPS
2024) that reach larger batches with fewer proposals.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from gradleak.attacks.analytic.spear.factorisation import F64, parallel_groups, unique_directions
from gradleak.attacks.analytic.spear.search import DirectionSearch


def deflate(search: DirectionSearch, iterations: int = 30, p: float = 0.5) -> Tensor:
    """Candidates for the unfound directions from the rows no found sample activates.

    Rows inactive for every found sample lie in the span of the unfound samples' dual
    vectors, a space of small dimension ``k``. Their sparse normals (found there like in
    :meth:`split`) fix the zero rows ``Z`` of an unfound direction ``a_u`` among them;
    the null space of ``Z`` holds ``a_u`` and all found directions, so
    ``a_u = q0 + sum_j beta_j a_j`` with ``q0`` its part orthogonal to the found ones, and
    ``beta`` is a robust (reweighted ``l_p``) regression making ``M a_u`` sparse.
    """
    if not search.found or len(search.found) >= search.b:
        return torch.zeros(0, search.b, dtype=F64)
    qf = torch.stack([d.q for d in search.found], dim=1)  # (b, f)
    quiet = ((search.mh @ qf).abs() <= search.tol[:, None]).all(dim=1)
    if int(quiet.sum()) < 2:
        return torch.zeros(0, search.b, dtype=F64)
    _, sv, vh = torch.linalg.svd(search.mh[quiet], full_matrices=False)
    k = int((sv > 3 * float(search.tol[quiet].pow(2).sum().sqrt())).sum())
    if k < 1 or k > search.b - len(search.found):
        return torch.zeros(0, search.b, dtype=F64)
    span = vh[:k].T  # (b, k): span of the quiet rows
    normals = split(search, span, 4096, rows=quiet) if k > 1 else span.T
    out: list[Tensor] = []
    basis_f = torch.linalg.qr(qf)[0]
    for w in normals:
        zero = quiet & ((search.mh @ w).abs() <= search.loose)
        lam, vec = torch.linalg.eigh(search.mh[zero].T @ search.mh[zero])
        level = float((search.tol[zero] ** 2).sum().sqrt())
        null = vec[:, lam.clamp_min(0).sqrt() <= 3 * level + 1e-7 * float(lam[-1].sqrt())]
        if null.shape[1] != len(search.found) + 1:
            continue
        rest = null - basis_f @ (basis_f.T @ null)
        q0 = torch.linalg.svd(rest, full_matrices=False)[0][:, 0]
        q0 = q0 - basis_f @ (basis_f.T @ q0)
        q0 = q0 / q0.norm()
        a = search.mh @ q0
        bmat = search.mh @ qf
        beta = torch.linalg.lstsq(bmat, -a[:, None]).solution[:, 0]
        eps = 0.3
        for _ in range(iterations):
            r = a + bmat @ beta
            wts = (r**2 + eps**2).pow(p / 2 - 1)
            lhs = bmat.T @ (wts[:, None] * bmat)
            beta = -torch.linalg.solve(lhs, bmat.T @ (wts * a))
            eps = max(eps * 0.5, float(search.tol.median()))
        out.append(q0 + qf @ beta)
    return torch.stack(out) if out else torch.zeros(0, search.b, dtype=F64)


def split(
    search: DirectionSearch, basis: Tensor, budget: int, rows: Tensor | None = None
) -> Tensor:
    """Sparse directions inside a subspace spanned by a few (``s``) true directions.

    Projected onto the subspace, rows active for exactly one of its ``s`` samples are
    parallel to that sample's dual vector; a true direction is orthogonal to the dual
    vectors of the other ``s - 1`` samples. Candidates are therefore the normals of every
    ``s - 1`` of the largest groups of parallel projected rows, plus SPEAR-style samples
    of ``s - 1`` projected rows as a fallback.
    """
    s = basis.shape[1]
    t = search.mh @ basis  # (n, s)
    tn = t.norm(dim=1)
    ok = tn > 30 * search.tol
    if rows is not None:
        ok &= rows
    use = torch.nonzero(ok).flatten()
    if len(use) < s - 1:
        return torch.zeros(0, search.b, dtype=F64)
    th = t[use] / tn[use, None]
    tol = search.tol[use] / tn[use]
    group, n_groups = parallel_groups(th, tol)
    sizes = torch.bincount(group, minlength=n_groups)
    top = torch.argsort(sizes, descending=True)[: s + 2]
    top = top[sizes[top] >= 2]
    reps = torch.stack([th[group == g][0] for g in top.tolist()]) if len(top) else th[:0]
    subsets: list[Tensor] = []
    if len(reps) >= s - 1:
        combos = list(itertools.combinations(range(len(reps)), s - 1))
        subsets.append(reps[torch.tensor(combos, dtype=torch.long)])
    idx = search.subsets(min(budget, 16 * 2**s), len(use), s - 1)
    subsets.append(th[idx])
    sub = torch.cat(subsets)
    if s == 1 or len(sub) == 0:
        return basis.T.clone()
    qfull, _ = torch.linalg.qr(sub.transpose(1, 2), mode="complete")
    beta = qfull[:, :, -1]
    zeros = ((beta @ th.T).abs() <= search.loose[use] / tn[use]).sum(dim=1)
    good = zeros >= max(s + 1, int(0.05 * len(use)))
    beta, zeros = beta[good], zeros[good]
    beta = unique_directions(beta[torch.argsort(zeros, descending=True)])[: 2 * s]
    return beta @ basis.T

