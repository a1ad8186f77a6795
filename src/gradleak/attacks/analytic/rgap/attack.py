"""R-GAP as a registered attack (``rgap``) and its rank-analysis table.

Zhu & Blaschko, "R-GAP: Recursive Gradient Attack on Privacy", ICLR 2021.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradleak.attacks.analytic._common import (
    flat_to_images,
    model_dtype,
    observed_gradients,
    to_unit_range,
)
from gradleak.attacks.analytic.rgap.chain import parse_chain
from gradleak.attacks.analytic.rgap.last_layer import Start, last_layer_starts
from gradleak.attacks.analytic.rgap.recursion import (
    Recursion,
    positively_homogeneous,
    range_violation,
)
from gradleak.attacks.analytic.rgap.solvers import SOLVERS
from gradleak.attacks.base import Attack, Callback, Progress, register_attack
from gradleak.errors import ConfigError
from gradleak.types import Observation, Reconstruction, Stopwatch, Trace


@register_attack("rgap")
class RGAP(Attack):
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

    def reconstruct(
        self,
        obs: Observation,
        *,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Reconstruction:
        """Runs the recursion (for every last-layer hypothesis) and keeps the most consistent."""
        self.check(obs)
        cfg = self.config
        if cfg.solver not in SOLVERS:
            raise ConfigError(f"rgap solver must be one of {sorted(SOLVERS)}, not {cfg.solver!r}")
        with Stopwatch() as clock:
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
            candidates: list[tuple[Start, Tensor, Recursion]] = []
            for run in finished:
                candidates.append((run.start, flat_to_images(run.x.reshape(1, -1), obs), run))
            for twin, base in twins:
                twin_run = next((r for r in finished if r.start is base), None)
                if twin_run is not None and base.logit:
                    scale = float(twin.logit) / base.logit  # type: ignore[arg-type]
                    candidates.append(
                        (twin, flat_to_images(twin_run.x.reshape(1, -1) * scale, obs), twin_run)
                    )
            scores = [run.residual + range_violation(img) for _, img, run in candidates]
            best_index = min(range(len(candidates)), key=lambda i: scores[i])
            best_start, images, best_run = candidates[best_index]
        labels = None if best_start.label is None else torch.tensor([best_start.label])
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
        return Reconstruction(
            images=to_unit_range(images, model_dtype(obs.model)),
            labels=labels,
            attack=self.name,
            config=self.config_dict(),
            trace=Trace(restart_scores=scores, best_restart=best_index,
                        wall_time=clock.elapsed),
            extras=extras,
        )


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
