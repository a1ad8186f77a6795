"""R-GAP: solving a layer's system (Gram / SVD) with its numerical rank.

Zhu & Blaschko, ICLR 2021 (the rank analysis of Sec. 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import torch

from gradleak.attacks.analytic.rgap.systems import LayerSystem


@dataclass
class Solution:
    """The solved input of a layer and its rank report."""

    x: np.ndarray
    rank: int
    condition: float
    residual: float


def _scaled(system: LayerSystem) -> tuple[sp.csr_matrix, np.ndarray]:
    """Stacks the blocks, each scaled to unit mean row norm (so neither kind dominates)."""
    mats, rhss = [], []
    for a, b in system.blocks:
        if a.shape[0] == 0:
            continue
        scale = math.sqrt(a.shape[0]) / max(sp.linalg.norm(a), 1e-300)
        mats.append(a * scale)
        rhss.append(b * scale)
    return sp.vstack(mats, format="csr"), np.concatenate(rhss)


def solve_gram(system: LayerSystem, rank_tol: float) -> Solution:
    """Least squares via the Gram matrix (Cholesky + one refinement; pseudo-inverse if singular).

    The rank is ``n`` when the Cholesky factorisation succeeds with a reciprocal condition
    number above ``rank_tol**2``; otherwise it is counted from the Gram eigenvalues.
    """
    a, b = _scaled(system)
    gram = (a.T @ a).toarray()
    atb = a.T @ b
    n = gram.shape[0]
    x: np.ndarray | None = None
    rank, cond = n, math.inf
    # torch's Cholesky / eigh (its bundled BLAS is much faster here than scipy's OpenBLAS)
    gram_t = torch.from_numpy(gram)
    chol, info = torch.linalg.cholesky_ex(gram_t)
    if int(info) == 0:
        anorm = np.abs(gram).sum(axis=0).max()
        rcond, _info = sla.lapack.dpocon(chol.numpy(), anorm, uplo="L")
        if rcond > rank_tol**2:
            rhs = torch.from_numpy(atb)[:, None]
            xt = torch.cholesky_solve(rhs, chol)
            resid = torch.from_numpy(a.T @ (b - a @ xt[:, 0].numpy()))[:, None]
            xt = xt + torch.cholesky_solve(resid, chol)
            x = xt[:, 0].numpy()
            cond = 1.0 / math.sqrt(rcond)
    if x is None:
        evals_t, evecs_t = torch.linalg.eigh(gram_t)
        evals, evecs = evals_t.numpy(), evecs_t.numpy()
        sv = np.sqrt(np.clip(evals, 0.0, None))
        keep = sv > rank_tol * sv.max()
        rank = int(keep.sum())
        inv = np.zeros_like(evals)
        inv[keep] = 1.0 / evals[keep]
        x = evecs @ (inv * (evecs.T @ atb))
        cond = float(sv.max() / sv[keep].min()) if rank else math.inf
    res = float(np.linalg.norm(a @ x - b) / max(float(np.linalg.norm(b)), 1e-300))
    return Solution(x, rank, cond, res)


def solve_svd(system: LayerSystem, rank_tol: float) -> Solution:
    """Least squares on the dense matrix with an SVD (exact rank; slow for large layers)."""
    a, b = _scaled(system)
    dense = a.toarray()
    x, _res, rank, sv = sla.lstsq(dense, b, cond=rank_tol, lapack_driver="gelsd",
                                  check_finite=False)
    keep = sv > rank_tol * sv.max()
    cond = float(sv.max() / sv[keep].min()) if keep.any() else math.inf
    res = float(np.linalg.norm(dense @ x - b) / max(float(np.linalg.norm(b)), 1e-300))
    return Solution(x, int(rank), cond, res)


def solve_linear(system: LayerSystem, solver: Callable[[LayerSystem, float], Solution],
                 rank_tol: float) -> Solution:
    """A linear layer: ``x = G^T k / |k|^2`` from ``G = k x^T`` (exact, rank ``n`` if k != 0).

    The relative residual covers both the gradient and the forward constraints, so that a
    wrong last-layer hypothesis shows up. With ``k = 0`` only the forward constraints remain.
    """
    assert system.rank_one is not None
    k, g = system.rank_one
    k2 = float(k @ k)
    if k2 == 0.0:
        if not system.blocks:
            return Solution(np.zeros(system.unknowns), 0, math.inf, math.inf)
        return solver(system, rank_tol)
    x = k @ g / k2
    num = np.linalg.norm(g - np.outer(k, x)) ** 2
    den = np.linalg.norm(g) ** 2
    for a, b in system.blocks:
        num += np.linalg.norm(a @ x - b) ** 2 / max(float(np.linalg.norm(b)) ** 2, 1e-300) * den
        den += den
    return Solution(x, system.unknowns, 1.0, float(math.sqrt(num / max(float(den), 1e-300))))


SOLVERS: dict[str, Callable[[LayerSystem, float], Solution]] = {
    "gram": solve_gram,
    "svd": solve_svd,
}
