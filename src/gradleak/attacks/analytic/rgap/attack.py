"""R-GAP as a registered attack (``rgap``) and its rank-analysis table.

Zhu & Blaschko, "R-GAP: Recursive Gradient Attack on Privacy", ICLR 2021.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradleak.attacks.analytic._common import flat_to_images, observed_gradients
from gradleak.attacks.analytic.base import AnalyticAttack, AnalyticResult
from gradleak.attacks.analytic.rgap.chain import parse_chain
from gradleak.attacks.analytic.rgap.last_layer import Start, last_layer_starts
from gradleak.attacks.analytic.rgap.recursion import (
    Recursion,
    positively_homogeneous,
    range_violation,
)
from gradleak.attacks.analytic.rgap.solvers import SOLVERS
from gradleak.attacks.base import Callback, Progress, register_attack
from gradleak.types import Observation


@register_attack("rgap")
class RGAP(AnalyticAttack):
    """R-GAP: recursive closed-form inversion of a chain of Linear / Conv2d layers (batch 1).

    Reports, per layer, the unknowns, gradient / forward constraints, numerical rank and
    invertibility in ``extras["rank_analysis"]`` (input layer first), the residual of each
    layer's system, and the label / logit hypothesis that was kept.

    Reference:
        Zhu & Blaschko, "R-GAP: Recursive Gradient Attack on Privacy", ICLR 2021.

    Example:
        >>> model = gl.models.create("cnn6")                            # doctest: +SKIP
        >>> obs, truth = gl.simulate(model, x[:1], torch.tensor([1]))   # doctest: +SKIP
        >>> rec = gl.reconstruct(obs, attack="rgap")                    # doctest: +SKIP
        >>> [r["invertible"] for r in rec.extras["rank_analysis"]]      # doctest: +SKIP
        [True, True, True, True, True, True, True]
    """

    @dataclass(frozen=True)
    class Config:
        """Settings of R-GAP.

        Attributes:
            solver: ``"gram"`` (Cholesky on the normal equations, fast, rank counted only
                when singular) or ``"svd"`` (dense SVD least squares, exact rank, slow).
            rank_tol: relative singular-value threshold for the numerical rank.
            prune_factor: a last-layer hypothesis whose accumulated residual exceeds
                ``prune_factor * max(best, prune_floor)`` is abandoned before the input layer.
            prune_floor: residual level below which hypotheses are never abandoned.
        """

        solver: str = "gram"
        rank_tol: float = 1e-7
        prune_factor: float = 100.0
        prune_floor: float = 1e-3

    requires = frozenset({"rgap_chain", "single_input", "gradient_or_one_step_delta"})
    positive = frozenset({"rank_tol", "prune_factor"})
    nonnegative = frozenset({"prune_floor"})

    def validate(self, cfg: Any) -> list[str]:
        """Also: ``solver`` names one of the solvers."""
        problems = super().validate(cfg)
        if cfg.solver not in SOLVERS:
            problems.append(f"solver must be one of {sorted(SOLVERS)}, not {cfg.solver!r}")
        return problems

    def solve(
        self, obs: Observation, generator: torch.Generator, callback: Callback | None
    ) -> AnalyticResult:
        """Runs the recursion (for every last-layer hypothesis) and keeps the most consistent."""
        cfg = self.config
        stages = parse_chain(obs)
        grads = observed_gradients(obs)
        starts = last_layer_starts(obs, stages[-1], grads)
        twins: list[tuple[Start, Start]] = []
        if positively_homogeneous(stages):
            # the second root of a label is the first one rescaled: solve it only once
            kept: dict[int | None, Start] = {}
            for st in starts:
                if st.label in kept and st.logit is not None:
                    twins.append((st, kept[st.label]))
                else:
                    kept[st.label] = st
            starts = list(kept.values())
        runs = [Recursion(stages, grads, st, SOLVERS[cfg.solver], cfg.rank_tol)
                for st in starts]
        active = list(runs)
        step = 0
        while active:
            for run in active:
                run.step()
            step += 1
            best_res = min(r.residual for r in active)
            # a hypothesis far less consistent than the best one is abandoned early
            active = [r for r in active if not r.done and
                      r.residual <= cfg.prune_factor * max(best_res, cfg.prune_floor)]
            if callback is not None:
                callback(Progress(iteration=step, total=len(stages), loss=best_res))
        finished = [r for r in runs if r.done]
        candidates: list[tuple[Start, Tensor, Recursion]] = [
            (run.start, run.x.reshape(1, -1), run) for run in finished]
        for twin, base in twins:
            twin_run = next((r for r in finished if r.start is base), None)
            if twin_run is not None and base.logit:
                scale = float(twin.logit) / base.logit  # type: ignore[arg-type]
                candidates.append((twin, twin_run.x.reshape(1, -1) * scale, twin_run))
        scores = [run.residual + range_violation(flat_to_images(flat, obs))
                  for _, flat, run in candidates]
        best_index = min(range(len(candidates)), key=lambda i: scores[i])
        best_start, flat, best_run = candidates[best_index]
        images = flat_to_images(flat, obs)
        report = list(reversed(best_run.report))
        extras: dict[str, Any] = {
            "rank_analysis": report,
            "invertible": all(r["invertible"] for r in report),
            "hypothesis": best_start.note,
            "hypotheses": [
                {"note": st.note, "score": sc, "finished": True}
                for (st, _, _), sc in zip(candidates, scores, strict=True)
            ] + [
                {"note": r.start.note, "score": r.residual, "finished": False}
                for r in runs if not r.done
            ],
            "unclamped_range": [float(images.min()), float(images.max())],
            "batch_size_assumed": obs.batch_size is None,
        }
        labels = None if best_start.label is None else torch.tensor([best_start.label])
        return AnalyticResult(inputs=flat, labels=labels, expected=1, extras=extras,
                              scores=scores, best=best_index)


def rank_table(rank_analysis: list[dict[str, Any]]) -> str:
    """Formats ``extras["rank_analysis"]`` as a plain-text table (input layer first)."""
    head = f"{'layer':<12}{'type':<8}{'unknowns':>9}{'grad':>8}{'fwd':>7}{'rank':>7}{'inv':>5}"
    lines = [head]
    for r in rank_analysis:
        lines.append(
            f"{r['layer']:<12}{r['type']:<8}{r['unknowns']:>9}{r['gradient_constraints']:>8}"
            f"{r['forward_constraints']:>7}{r['rank']:>7}{'yes' if r['invertible'] else 'no':>5}"
        )
    return "\n".join(lines)
