"""SPEAR's search state: candidate classification and the activation-pattern filter.

Dimitrov et al., "SPEAR: Exact Gradient Inversion of Batches in Federated Learning", NeurIPS
2024. For ``dL/dW = M V^T`` (see :mod:`.factorisation`) the columns ``a_j`` of the unknown
mixing matrix are the directions ``q`` for which ``M q`` is sparse (the ReLU zeroes the
gradient of every neuron a sample leaves inactive). :class:`DirectionSearch` holds the rows
of ``M`` with their measured noise, refits raw candidate directions as null vectors of the
rows they zero (:meth:`DirectionSearch.classify`), and keeps a direction only if its zero
pattern is an activation pattern the first layer can produce
(:meth:`DirectionSearch.realisable_margin`, a small linear program): mixtures of directions
zero many rows too, but their patterns are not realisable. Candidate generators live in
:mod:`.proposals` and :mod:`.subspaces`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linprog
from torch import Tensor

from gradleak.attacks.analytic.spear.factorisation import (
    F64,
    LowRank,
    parallel_groups,
    unique_directions,
)


@dataclass
class Direction:
    """A validated column direction of ``A`` (unit vector) and its zero pattern."""

    q: Tensor
    zeros: Tensor  # bool over all rows of M
    margin: float
    source: str


class DirectionSearch:
    """Finds the sparse directions of ``M`` (see module docstring).

    Args:
        lr: the factorisation.
        weight: the first layer's weight (out, in), for the activation-pattern test.
        bias: its bias (out,).
        zero_tol: relative threshold below which ``|m_r . q| / |m_r|`` counts as zero; it
            is raised row by row to ``noise_factor * noise / |m_r|``.
        noise_factor: multiple of the noise level that still counts as zero.
        generator: randomness of the sampling.
        out_of_time: returns True once the wall-clock budget is spent; long loops stop then.
    """

    chunk = 256  # candidates classified at once

    def __init__(
        self,
        lr: LowRank,
        weight: Tensor,
        bias: Tensor,
        zero_tol: float,
        generator: torch.Generator,
        noise_factor: float = 10.0,
        out_of_time: Callable[[], bool] = lambda: False,
    ) -> None:
        self.out_of_time = out_of_time
        self.b = lr.rank
        norms = lr.m.norm(dim=1)
        # dead rows: neurons no sample activated (zero gradient); weak rows are too noisy to use
        self.dead = norms <= noise_factor * lr.noise
        rel = (noise_factor * lr.row_noise / norms.clamp_min(1e-300)).clamp_min(zero_tol)
        ok = ~self.dead
        typical = float(rel[ok].median()) if bool(ok.any()) else zero_tol
        self.live = ok & (rel <= min(1e3 * typical, 1e-4))
        self.informative = self.live | self.dead
        self.rows = torch.nonzero(self.live).flatten()
        self.mh = lr.m[self.rows] / norms[self.rows, None]  # unit rows
        self.tol = rel[self.rows]  # per-row zero level
        self.loose = (30 * self.tol).clamp_max(1e-3)
        self.zero_tol = float(self.tol.max())
        self.gen = generator
        p = weight.detach().to(F64) @ lr.v  # pre-activations are p @ y + bias for x = V y
        self.pre_w, self.pre_b = p, bias.detach().to(F64)
        self.m_live = lr.m[self.rows]
        pn = p.norm(dim=1).clamp_min(1e-300)
        self.p_hat = (p / pn[:, None]).numpy()
        self.b_hat = (bias.detach().to(F64) / pn).numpy()
        self.y_bound = 1e4 * max(1.0, float(np.abs(self.b_hat).max()))
        self.group, self.n_groups = parallel_groups(self.mh, self.tol)
        self.max_split = 6
        self.found: list[Direction] = []
        # found index -> (input coordinates y with x = V y, its dz over the live rows)
        self.known: dict[int, tuple[Tensor, Tensor]] = {}
        self.rejected: list[Tensor] = []
        self.subspaces_seen: dict[int, Tensor] = {}
        self.completion_tried = -1
        self.stats = {"candidates": 0, "mixtures": 0, "unrealisable": 0, "duplicates": 0,
                      "linear_programs": 0}

    # ------------------------------------------------------------------ classification
    def null_spaces(self, masks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Eigen-decomposition of the Gram matrices of the masked rows, and null dimensions.

        Returns:
            ``(eigenvalues (K, b) ascending, eigenvectors (K, b, b), nullity (K,))``.
        """
        gram = torch.einsum("kr,ri,rj->kij", masks.to(F64), self.mh, self.mh)
        lam, vec = torch.linalg.eigh(gram)
        sig = lam.clamp_min(0).sqrt()
        level = (masks.to(F64) @ self.tol**2).sqrt()
        thresh = torch.maximum(3 * level, 1e-7 * sig[:, -1])
        nullity = (sig <= thresh[:, None]).sum(1)
        return lam, vec, nullity

    def fit_error(self, masks: Tensor, resid: Tensor) -> Tensor:
        """How far a fitted null vector is from exact, measured on the rows it was fitted to.

        A vector fitted to the masked rows inherits their noise (amplified by the
        conditioning of their Gram matrix); the largest residual among those rows measures
        it, and three times that still counts as zero on the other rows (K,).
        """
        return 3 * torch.where(masks, resid, torch.zeros((), dtype=F64)).max(dim=1).values

    def classify(self, q: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Refits raw candidates (K, b) as null spaces of the rows they (nearly) zero.

        A true direction ``a_j`` zeroes the rows of the neurons its sample leaves inactive,
        and those rows span the orthogonal complement of ``a_j`` many times over. A mixture
        of directions ``j, k`` zeroes the rows inactive for both samples, which leave a 2-D
        null space; the reweighted search often adds one extra row (or a group of parallel
        rows) that pins a single vector. Such *essential* rows (statistical leverage 1) are
        removed, exposing the subspace.

        Returns:
            ``(basis (b, s), zero mask over live rows)`` per surviving candidate: ``s = 1``
            for a direction, ``s > 1`` for a subspace spanned by several directions.
        """
        out: list[tuple[Tensor, Tensor]] = []
        for start in range(0, len(q), self.chunk):
            if self.out_of_time():
                break
            out.extend(self._classify_chunk(q[start : start + self.chunk]))
        return out

    def _classify_chunk(self, q: Tensor) -> list[tuple[Tensor, Tensor]]:
        b = self.b
        q = q / q.norm(dim=1, keepdim=True)
        masks = (q @ self.mh.T).abs() <= self.loose
        alive = masks.sum(1) >= b - 1
        masks, q = masks[alive], q[alive]
        if len(q) == 0:
            return []
        for _ in range(5):
            lam, vec, nullity = self.null_spaces(masks)
            single = nullity <= 1  # nullity 0: the loose mask caught non-zero rows; refit
            q = torch.where(single[:, None], vec[:, :, 0], q)
            resid = (q @ self.mh.T).abs()
            new = resid <= self.tol + self.fit_error(masks, resid)[:, None]
            new = torch.where(single[:, None], new, masks)
            if torch.equal(new, masks):
                break
            masks = new & (new.sum(1, keepdim=True) >= b - 1) | masks & (
                new.sum(1, keepdim=True) < b - 1
            )
        lam, vec, nullity = self.null_spaces(masks)
        results: list[tuple[Tensor, Tensor]] = []
        for k in range(len(q)):
            s = int(nullity[k])
            mask = masks[k]
            if s == 0 or int(mask.sum()) < b - 1:
                continue
            if s > 1:
                results.append((vec[k, :, :s], mask))
                continue
            # leverage of every group of parallel rows in the (b-1)-dim row space
            sub = self.mh[mask]
            lev = ((sub @ vec[k, :, 1:]) ** 2 / lam[k, 1:].clamp_min(1e-300)).sum(1)
            groups = self.group[mask]
            glev = torch.zeros(self.n_groups, dtype=F64).index_add_(0, groups, lev)
            essential = glev[groups] > 1 - 1e-3
            if essential.any() and not essential.all():
                keep = mask.clone()
                keep[torch.nonzero(mask).flatten()[essential]] = False
                lam2, vec2, null2 = self.null_spaces(keep[None])
                s2 = int(null2[0])
                if s2 > 1:
                    results.append((vec2[0, :, :s2], keep))
                    continue
            results.append((vec[k, :, :1], mask))
        return results

    def realisable_margin(self, zeros_live: Tensor) -> float:
        """Largest margin of an input in span(V) whose inactive neurons are exactly the zeros.

        Solves ``max t`` s.t. ``p_r . y + b_r <= -t`` on zero rows (dead rows included) and
        ``>= t`` elsewhere, with normalised rows. Negative: the pattern is not an activation
        pattern of the first layer, so the direction is a mixture.
        """
        self.stats["linear_programs"] += 1
        zeros = np.ones(self.p_hat.shape[0], dtype=bool)
        zeros[self.rows.numpy()] = zeros_live.numpy()
        use = self.informative.numpy()  # rows too weak to tell are left out
        sign = np.where(zeros, 1.0, -1.0)[use]
        a_ub = np.concatenate([sign[:, None] * self.p_hat[use], np.ones((len(sign), 1))], axis=1)
        b_ub = -sign * self.b_hat[use]
        cost = np.zeros(self.b + 1)
        cost[-1] = -1.0
        bounds = [(-self.y_bound, self.y_bound)] * self.b + [(None, 1.0)]
        res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
        return float(res.x[-1]) if res.status == 0 else -math.inf

    def _new_subspace(self, basis: Tensor) -> bool:
        """Records a subspace; False if the same subspace was seen before."""
        proj = (basis @ basis.T).reshape(-1)
        seen = self.subspaces_seen.get(basis.shape[1])
        if seen is not None and bool(((seen - proj).abs().max(dim=1).values < 1e-6).any()):
            return False
        self.subspaces_seen[basis.shape[1]] = (
            proj[None] if seen is None else torch.cat([seen, proj[None]])
        )
        return True

    def unfound_in(self, basis: Tensor) -> int:
        """How many of the directions spanning ``basis`` (b, s) are still unfound."""
        if not self.found:
            return basis.shape[1]
        qs = torch.stack([d.q for d in self.found])
        inside = int(((qs @ basis).norm(dim=1) > 1 - 1e-8).sum())
        return basis.shape[1] - inside

    def known_mask(self, q: Tensor) -> Tensor:
        """Bool (K,): rows of ``q`` (unit) matching a found or rejected direction."""
        known = [d.q for d in self.found] + self.rejected
        if not known or len(q) == 0:
            return torch.zeros(len(q), dtype=torch.bool)
        return ((q @ torch.stack(known).T).abs() > 1 - 1e-6).any(dim=1)

    def process(self, raw: Tensor, source: str, subspaces: list[Tensor]) -> None:
        """Classifies raw candidates; keeps realisable new directions, queues subspaces."""
        raw = unique_directions(raw)
        self.stats["candidates"] += len(raw)
        known = self.known_mask(raw)
        self.stats["duplicates"] += int(known.sum())
        directions: list[tuple[Tensor, Tensor]] = []
        for basis, mask in self.classify(raw[~known]):
            if basis.shape[1] > 1:
                self.stats["mixtures"] += 1
                if basis.shape[1] <= self.max_split and self._new_subspace(basis):
                    subspaces.append(basis)
                continue
            qq = basis[:, 0]
            directions.append((qq * torch.sign(qq[torch.argmax(qq.abs())]), mask))
        directions.sort(key=lambda d: -int(d[1].sum()))
        for q, mask in directions:
            if len(self.found) >= self.b or self.out_of_time():
                return
            if bool(self.known_mask(q[None])[0]):
                self.stats["duplicates"] += 1
                continue
            margin = self.realisable_margin(mask)
            if margin <= 0:
                self.stats["unrealisable"] += 1
                self.rejected.append(q)
                continue
            zeros = torch.ones(len(self.live), dtype=torch.bool)
            zeros[self.rows] = mask
            self.found.append(Direction(q, zeros, margin, source))

    # ------------------------------------------------------------------ generators
    def subsets(self, count: int, n: int, size: int) -> Tensor:
        """``count`` random subsets of ``size`` distinct indices below ``n``."""
        if size * 4 > n:
            return torch.argsort(torch.rand(count, n, generator=self.gen), dim=1)[:, :size]
        idx = torch.randint(0, n, (count, size), generator=self.gen)
        srt = idx.sort(dim=1).values
        distinct = (srt[:, 1:] != srt[:, :-1]).all(dim=1) if size > 1 else torch.ones(
            count, dtype=torch.bool)
        return idx[distinct]
