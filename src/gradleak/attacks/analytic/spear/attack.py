"""The ``spear`` attack: exact recovery of a whole batch from a first linear layer + ReLU.

Dimitrov, Müller, Petrov & Vechev, "SPEAR: Exact Gradient Inversion of Batches in Federated
Learning", NeurIPS 2024. For the first layer ``Z = W X + b`` of a batch of ``B`` inputs,
``dL/dW = (dL/dZ) X^T`` has rank ``B`` and ``dL/db = (dL/dZ) 1``. Write the rank-``B``
factorisation ``dL/dW = M V^T``. Then ``dL/dZ = M A Λ`` and ``X^T = Λ^{-1} A^{-1} V^T`` for
an unknown invertible ``A`` (unit columns) and diagonal ``Λ``. Because of the ReLU, every
column of ``dL/dZ`` is zero wherever its sample leaves a neuron inactive, so the columns of
``A`` are the directions ``q`` for which ``M q`` is sparse. Labels are never used, so
repeated labels (even one class) are no obstacle.

All of it runs in float64 whatever the observation's dtype; the zero thresholds are multiples
of the noise measured in the gradient itself (:mod:`.factorisation`). The budget is
deterministic: ``max_rounds`` rounds of ``pivots_per_round`` reweighted proposals and
``samples_per_round`` SPEAR samples, all drawn from the seeded generator, so the same inputs
give the same result on a busy and on an idle machine. ``max_seconds`` (off by default) adds
a wall-clock limit checked inside every round; a run it stops depends on the machine's speed
and says so in ``extras["stopped_by"]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradleak.attacks.analytic._common import (
    find_first_linear,
    observed_gradients,
    param_gradient,
)
from gradleak.attacks.analytic.base import AnalyticAttack, AnalyticResult
from gradleak.attacks.analytic.spear.factorisation import F64, low_rank
from gradleak.attacks.analytic.spear.peel import peel
from gradleak.attacks.analytic.spear.proposals import (
    complete_last,
    pivot_rows,
    reweighted,
    spear_samples,
)
from gradleak.attacks.analytic.spear.search import DirectionSearch
from gradleak.attacks.analytic.spear.subspaces import deflate, split
from gradleak.attacks.analytic.spear.verify import select_directions, solve_inputs, verify
from gradleak.attacks.base import Callback, Progress, register_attack
from gradleak.types import Observation


@register_attack("spear")
class SPEAR(AnalyticAttack):
    """Exact batch recovery for a first linear layer with bias followed by a ReLU.

    Returns the batch (in the order of the recovered directions, not the client's order),
    labels fitted per sample, and ``extras["per_sample"]``: for every sample the self-check
    (activation pattern agreement, relative error of its own gradient column, whether it lies
    in the image range) and ``recovered`` (all checks pass). The checks use only the
    observation. When fewer than ``B`` directions are found within the budget the result is
    partial (``Reconstruction.partial``, ``expected`` = B): it holds the inputs that peeling
    made exact (:mod:`.peel`; each is the ratio of a single-sample row, exact like the bias
    attack) and ``extras`` says how many directions were found.

    Reference:
        Dimitrov et al., "SPEAR: Exact Gradient Inversion of Batches in Federated Learning",
        NeurIPS 2024.

    Example:
        >>> model = gl.models.create("mlp", depth=2, width=1000)          # doctest: +SKIP
        >>> obs, truth = gl.simulate(model, x16, torch.zeros(16, dtype=torch.long))  # +SKIP
        >>> rec = gl.reconstruct(obs, attack="spear")                     # doctest: +SKIP
        >>> rec.extras["recovered"]                                       # doctest: +SKIP
        16
    """

    @dataclass(frozen=True)
    class Config:
        """Settings of SPEAR.

        Attributes:
            max_rounds: search rounds at most (the deterministic budget).
            samples_per_round: SPEAR row-subset proposals per round.
            pivots_per_round: pivot rows of the reweighted search per round.
            max_seconds: optional wall-clock limit of the search (None: off). It is checked
                inside every round, so it is honoured within a few percent, but a run it
                stops depends on the machine's load.
            irls_iterations: reweighting iterations.
            irls_p: exponent ``p`` of the sparsity objective ``sum |m_r . q|^p``.
            zero_tol: floor of the relative level under which an entry counts as zero (the
                float64 arithmetic of the search itself); raised row by row to
                ``noise_factor`` times the noise measured in the gradient.
            noise_factor: multiple of the measured noise that still counts as zero.
            rank_tol: relative singular value below which the weight gradient's rank stops
                (only used when the batch size is not shared).
            verify_tol: relative error of a sample's own gradient column under which the
                sample counts as recovered.
        """

        max_rounds: int = 20
        samples_per_round: int = 1024
        pivots_per_round: int = 128
        max_seconds: float | None = None
        irls_iterations: int = 20
        irls_p: float = 0.5
        zero_tol: float = 1e6 * torch.finfo(torch.float64).eps
        noise_factor: float = 10.0
        rank_tol: float = 1e-9
        verify_tol: float = 1e-3

    requires = frozenset({"relu_after_fc_first_layer", "gradient_or_one_step_delta"})
    positive = frozenset({"max_rounds", "pivots_per_round", "max_seconds", "irls_iterations",
                          "irls_p", "zero_tol", "noise_factor", "rank_tol", "verify_tol"})
    nonnegative = frozenset({"samples_per_round"})

    def validate(self, cfg: Any) -> list[str]:
        """Also: ``irls_p`` in (0, 2] (a sparsity objective), ``zero_tol`` below 1e-3."""
        problems = super().validate(cfg)
        if isinstance(cfg.irls_p, int | float) and not 0 < cfg.irls_p <= 2:
            problems.append(f"irls_p must lie in (0, 2], not {cfg.irls_p}")
        if isinstance(cfg.zero_tol, int | float) and cfg.zero_tol >= 1e-3:
            problems.append(f"zero_tol must be well below 1e-3, not {cfg.zero_tol}")
        return problems

    def solve(
        self, obs: Observation, generator: torch.Generator, callback: Callback | None
    ) -> AnalyticResult:
        """Recovers the batch from the first layer's gradients (no labels used)."""
        cfg = self.config
        t0 = time.perf_counter()

        def out_of_time() -> bool:
            return cfg.max_seconds is not None and time.perf_counter() - t0 > cfg.max_seconds

        first = find_first_linear(obs, need_relu=True)
        grads = observed_gradients(obs)
        gw = param_gradient(grads, first.name, "weight")
        gb = param_gradient(grads, first.name, "bias").to(F64)
        lr = low_rank(gw, obs.batch_size, cfg.rank_tol, generator)
        search = DirectionSearch(lr, first.module.weight, first.module.bias, cfg.zero_tol,
                                 generator, cfg.noise_factor, out_of_time)
        rounds = self._search(search, gb, callback, out_of_time)
        found = select_directions(search, lr.rank)
        stopped = "complete" if len(found) == lr.rank else (
            "time" if out_of_time() else "rounds")
        extras: dict[str, Any] = {
            "layer": first.name,
            "batch_size": lr.rank,
            "batch_size_shared": obs.batch_size is not None,
            "directions_found": len(search.found),
            "rounds": rounds,
            "stopped_by": stopped,
            "zero_tol_max": search.zero_tol,
            "rows_used": len(search.rows),
            "search": dict(search.stats),
            "observation_dtype": str(gw.dtype).replace("torch.", ""),
        }
        if len(found) < lr.rank:
            extras["partial"] = (
                f"found {len(found)} of {lr.rank} directions within the budget "
                f"({cfg.max_rounds} rounds"
                + (f", {cfg.max_seconds:g} s" if cfg.max_seconds is not None else "")
                + f"); {len(search.known)} inputs are exact from single-sample rows, the "
                "others need all directions. Raise max_rounds / samples_per_round"
            )
            # the inputs peeling made exact are still a result: a partial one
            order = sorted(search.known)
            flat = torch.stack([lr.v @ search.known[j][0] for j in order]) if order else (
                torch.zeros(0, lr.v.shape[0], dtype=F64))
            extras.update(recovered=len(order), per_sample=[], known_directions=order)
            return AnalyticResult(inputs=flat, labels=None, expected=lr.rank, extras=extras)
        flat, lam = solve_inputs(lr, gb, found)
        extras.update(verify(obs, first.name, flat, found, lam, lr, search, cfg.verify_tol))
        labels = torch.tensor([s["label"] for s in extras["per_sample"]], dtype=torch.long)
        keep = extras["recovered_indices"]
        if len(keep) < lr.rank:  # inputs that fail their own gradient check are not results
            extras["partial"] = (
                f"{lr.rank - len(keep)} of {lr.rank} solved inputs fail their own gradient "
                f"check (column error > verify_tol={cfg.verify_tol:g}, a wrong activation "
                "pattern or pixels out of range); only the verified ones are returned")
            idx = torch.tensor(keep, dtype=torch.long)
            flat, labels = flat[idx], labels[idx]
        return AnalyticResult(inputs=flat, labels=labels, expected=lr.rank, extras=extras)

    def _search(
        self, search: DirectionSearch, bias_grad: Tensor, callback: Callback | None,
        out_of_time: Callable[[], bool],
    ) -> int:
        """Rounds of reweighted proposals, subspace splitting and SPEAR samples."""
        cfg = self.config
        b = search.b

        def searching() -> bool:
            return len(search.found) < b and not out_of_time()

        queue: list[Tensor] = []
        rounds = 0
        while searching() and rounds < cfg.max_rounds:
            rounds += 1
            pivots = pivot_rows(search, min(cfg.pivots_per_round, search.mh.shape[0]))
            search.process(reweighted(search, pivots, cfg.irls_iterations, cfg.irls_p),
                           "reweighted", queue)
            while queue and searching():
                if len(search.found) == b - 1 and b > 1:
                    search.process(complete_last(search), "completion", queue)
                    if len(search.found) == b:
                        break
                content = [search.unfound_in(basis) for basis in queue]
                queue = [q for q, c in zip(queue, content, strict=True) if c > 0]
                if not queue:
                    break
                best = min(range(len(queue)), key=lambda i: queue[i].shape[1])
                search.process(split(search, queue.pop(best), max(cfg.samples_per_round, 1)),
                               "split", queue)
            while searching():  # peel while it finds something (each pass is cheap)
                before = len(search.found)
                search.process(peel(search, bias_grad), "peel", queue)
                if len(search.found) == before:
                    break
            if searching():
                search.process(deflate(search), "deflation", queue)
            if len(search.found) == b - 1 and b > 1 and not out_of_time():
                search.process(complete_last(search), "completion", queue)
            if searching() and cfg.samples_per_round > 0:
                search.process(spear_samples(search, cfg.samples_per_round), "sample", queue)
            if callback is not None:
                callback(Progress(iteration=len(search.found), total=b, loss=float(rounds)))
        return rounds
