"""The one gradient-matching engine behind ``dlg``, ``idlg``, ``ig``, ``gradinversion``, ...

:class:`OptimizationAttack` minimises, for R restarts at once,

    D(update(z, y), observed update) + sum_k w_k prior_k(x)

over dummy inputs ``z`` (model input space; ``x`` is ``z`` mapped back to [0, 1] pixels)
and, for DLG's joint mode, soft labels ``y``. One iteration evaluates every restart in a
single batched forward/backward (see :mod:`.objective`), steps a batched optimiser (see
:mod:`.optimizers`), applies IG's box constraint (clamp to [0, 1] pixels), and logs the
per-restart objective. The restart with the lowest final gradient-matching distance (priors
excluded, as IG's ``scoring_choice='loss'`` and breaching's restart scoring) is returned.

References:
    Zhu, Liu & Han, "Deep Leakage from Gradients", NeurIPS 2019.
    Zhao, Mopuri & Bilen, "iDLG: Improved Deep Leakage from Gradients", arXiv 2001.02610.
    Geiping, Bauermeister, Dröge & Moeller, "Inverting Gradients - How easy is it to break
    privacy in federated learning?", NeurIPS 2020.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradleak.attacks.base import Attack, Callback, Progress
from gradleak.attacks.optimization.compilation import compiled_objective, resolve_compile
from gradleak.attacks.optimization.config import OptimizationConfig
from gradleak.attacks.optimization.inits import INITS
from gradleak.attacks.optimization.labelmodes import (
    LabelPlan,
    batch_size_of,
    label_requirements,
    plan_labels,
)
from gradleak.attacks.optimization.objective import MatchingObjective
from gradleak.attacks.optimization.optimizers import create_optimizer
from gradleak.attacks.optimization.schedules import lr_factors
from gradleak.errors import ConfigError, RegistryError
from gradleak.precision import full_precision
from gradleak.priors.base import Prior, PriorContext, build_priors
from gradleak.types import Observation, Reconstruction, Stopwatch, Trace

__all__ = ["OptimizationAttack"]

@dataclass
class _Problem:
    """Everything one run needs, resolved from the config and the observation."""

    objective: MatchingObjective
    priors: list[tuple[float, Prior]]
    plan: LabelPlan
    lo: Tensor  # (C, 1, 1) input-space value of pixel 0
    scale: Tensor  # (C, 1, 1) input-space width of one pixel unit
    shape: tuple[int, ...]  # (R, B, C, H, W)


def _draw_start(init_name: str, prob: _Problem, gen: torch.Generator, num_classes: int
                ) -> tuple[Tensor, Tensor | None]:
    """Initial inputs (R, B, C, H, W) and, if ``num_classes``, soft-label logits (R, B, K).

    Drawn restart by restart (image, then logits), so adding restarts never changes the
    first ones: restart r starts where a run with only its draws would.
    """
    init = INITS.get(init_name)
    lo, hi = prob.lo, prob.lo + prob.scale
    R, B = prob.shape[:2]
    one = (1, *prob.shape[1:])
    z_parts, logit_parts = [], []
    for _ in range(R):
        z_parts.append(init(one, gen, lo, hi))
        if num_classes:
            logit_parts.append(torch.randn((1, B, num_classes), generator=gen, dtype=lo.dtype))
    z = torch.cat(z_parts).detach().requires_grad_(True)
    if not num_classes:
        return z, None
    return z, torch.cat(logit_parts).to(z.device).requires_grad_(True)


def _batching(setting: str, objective: MatchingObjective, z: Tensor) -> str:
    """Resolves ``batching="auto"``: a loop for eager BatchNorm models on CPU, else vmap.

    Compiled objectives always batch: the loop's ``torch.autograd.grad`` splits the compiled
    graph, and torch 2.13 then returns distances disconnected from the input for BN models.
    """
    if setting != "auto":
        return setting
    loop = z.device.type == "cpu" and bool(objective.bn_layers) and not objective.compiled
    return "loop" if loop else "vmap"


class OptimizationAttack(Attack):
    """Gradient matching by optimisation, all restarts batched (the engine of every recipe).

    Subclasses are recipes: they set ``Config`` to a subclass of :class:`OptimizationConfig`
    with their paper's defaults and register themselves with ``@register_attack``.

    Example:
        >>> import torch, gradleak as gl
        >>> model = gl.models.create("lenet", in_shape=(3, 16, 16))
        >>> x, y = torch.rand(1, 3, 16, 16), torch.tensor([3])
        >>> obs, truth = gl.simulate(model, x, y, share_labels=True)
        >>> rec = gl.reconstruct(obs, attack="ig", iterations=5, restarts=2)
        >>> rec.images.shape, rec.trace.best_restart in (0, 1)
        (torch.Size([1, 3, 16, 16]), True)
    """

    Config: ClassVar[type] = OptimizationConfig
    requires: ClassVar[frozenset[str]] = frozenset({"known_batch"})
    config: OptimizationConfig

    def requirements(self) -> set[str]:
        """The recipe's requirements plus those of its label setting."""
        return set(self.requires) | set(label_requirements(self.config.labels))

    # ------------------------------------------------------------------ setup
    def _priors(self, obs: Observation) -> list[tuple[float, Prior]]:
        try:
            priors = build_priors(self.config.priors)
        except RegistryError as exc:
            raise ConfigError(f"attack {self.name!r}: {exc}") from None
        for _, prior in priors:
            prior.prepare(obs)
        return priors

    def _problem(self, obs: Observation) -> _Problem:
        cfg = self.config
        batch = batch_size_of(obs)
        priors = self._priors(obs)
        plan = plan_labels(cfg.labels, obs)
        bn_stats = any(p.needs_bn_stats for _, p in priors)

        def build() -> MatchingObjective:
            return MatchingObjective(obs, distance=cfg.distance, layer_weights=cfg.layer_weights,
                                     bn_stats=bn_stats, batch_size=batch)

        if resolve_compile(cfg.compile, obs, batch=batch, restarts=cfg.restarts,
                           iterations=cfg.iterations):
            key = (cfg.distance, cfg.layer_weights, bn_stats, batch, cfg.batching)
            objective = compiled_objective(obs, key, build)
        else:
            objective = build()
        dtype = obs.update[0].dtype
        device = obs.update[0].device
        c = obs.data_shape[0]
        lo = obs.normalize(torch.zeros(1, c, 1, 1, dtype=dtype, device=device)).reshape(c, 1, 1)
        hi = obs.normalize(torch.ones(1, c, 1, 1, dtype=dtype, device=device)).reshape(c, 1, 1)
        shape = (cfg.restarts, batch, *obs.data_shape)
        return _Problem(objective, priors, plan, lo, hi - lo, shape)

    # ------------------------------------------------------------------ run
    def reconstruct(
        self,
        obs: Observation,
        *,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Reconstruction:
        """Reconstructs the client's batch from ``obs`` (see the class docstring).

        Args:
            obs: what the server observed (never the ground truth).
            generator: CPU generator for the initialisation and Langevin noise.
            callback: called with :class:`~gradleak.attacks.Progress` after every iteration.

        Raises:
            ThreatModelError: ``obs`` lacks what the config needs (labels, batch size, ...).
            ConfigError: a setting does not fit this observation.
        """
        self.check(obs)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        with Stopwatch() as sw, full_precision():
            out = self._run(obs, gen, callback)
        out.trace.wall_time = sw.elapsed
        return out

    def _run(self, obs: Observation, gen: torch.Generator,
             callback: Callback | None) -> Reconstruction:
        cfg = self.config
        prob = self._problem(obs)
        lo, scale, R = prob.lo, prob.scale, prob.shape[0]
        hi = lo + scale
        joint = prob.plan.labels is None
        z, logits = _draw_start(cfg.init, prob, gen, obs.num_classes if joint else 0)
        params = [z] if logits is None else [z, logits]
        fixed = z.new_zeros(0, dtype=torch.long)  # unused when the labels are optimised
        if not joint:
            assert prob.plan.labels is not None
            fixed = prob.plan.labels.to(z.device)

        def targets() -> Tensor:
            return fixed if logits is None else logits.softmax(-1)

        if _batching(cfg.batching, prob.objective, z) == "loop":
            prob.objective.vectorized = False
        elif R > 1 and prob.objective.vectorized is None:
            with torch.no_grad():
                t0 = targets()
            if not prob.objective.check_vectorization(z, t0):
                warnings.warn(
                    "batching the restarts with torch.func.vmap changes the gradient for this "
                    "model (a torch issue with some layers, e.g. LayerNorm); the restarts run "
                    "one after the other instead", stacklevel=3)

        ctx = PriorContext(iteration=0, iterations=cfg.iterations)
        lr_now = cfg.lr

        def closure() -> tuple[Tensor, list[Tensor]]:
            with torch.enable_grad():
                total, stats = prob.objective(z, targets())
                if prob.priors:
                    x = (z - lo) / scale
                    ctx.bn_inputs = stats
                    for w, prior in prob.priors:
                        total = total + w * prior(x, ctx)
                grads = list(torch.autograd.grad(total.sum(), params))
            if cfg.langevin > 0:
                noise = torch.randn(z.shape, generator=gen, dtype=z.dtype).to(z.device)
                grads[0] = grads[0] + (cfg.langevin * lr_now) * noise
            return total.detach(), grads

        opt = create_optimizer(cfg.optimizer, params, dict(cfg.optimizer_settings))
        factors = lr_factors(cfg.schedule, cfg.iterations, cfg.warmup)
        T = cfg.iterations
        every = max(1, T // 20) if cfg.snapshot_every is None else cfg.snapshot_every
        losses = torch.empty(T, R, dtype=z.dtype, device=z.device)
        snap_its: list[int] = []
        snaps: list[Tensor] = []

        def snapshot(it: int) -> None:
            snap_its.append(it)
            snaps.append(((z.detach() - lo) / scale).clamp(0, 1).cpu().clone())

        if every:
            snapshot(0)
        best_val = torch.full((R,), float("inf"), dtype=z.dtype, device=z.device)
        best = [p.detach().clone() for p in params] if cfg.keep_best else []
        for it in range(T):
            lr_now = cfg.lr * factors[it]
            ctx.iteration = it
            start = [p.detach().clone() for p in params] if cfg.keep_best else []
            loss = opt.step(closure, lr_now)
            with torch.no_grad():
                if cfg.boxed:
                    z.copy_(torch.maximum(torch.minimum(z, hi), lo))
                losses[it] = loss
                if cfg.keep_best:
                    better = torch.isfinite(loss) & (loss < best_val)
                    best_val = torch.where(better, loss, best_val)
                    for b, s in zip(best, start, strict=True):
                        b.copy_(torch.where(better.view(-1, *[1] * (s.dim() - 1)), s, b))
            if every and (it + 1) % every == 0:
                snapshot(it + 1)
            if callback is not None:
                callback(Progress(iteration=it + 1, total=T, loss=float(loss.min())))
        if every and snap_its[-1] != T:
            snapshot(T)

        final = best if cfg.keep_best else [p.detach() for p in params]
        z_final = final[0]
        logits_final = final[1] if logits is not None else None
        with torch.enable_grad():
            t_final = fixed if logits_final is None else logits_final.softmax(-1)
            scores, _ = prob.objective(z_final, t_final)
        scores = scores.detach().cpu()
        scores = torch.where(torch.isfinite(scores), scores, torch.full_like(scores, float("inf")))
        best_r = int(torch.argmin(scores))
        diverged = not bool(torch.isfinite(scores[best_r]))
        images = ((z_final[best_r] - lo) / scale).nan_to_num(0.5).clamp(0, 1).detach().cpu()
        if logits_final is None:
            labels = fixed.detach().cpu().clone()
        else:
            labels = logits_final[best_r].argmax(-1).cpu()
        extras: dict[str, Any] = {
            "labels_source": prob.plan.source,
            "diverged": diverged,
            "compiled": prob.objective.compiled,
            "vectorized": bool(prob.objective.vectorized) if R > 1 else None,
            "evaluations_per_iteration": opt.evaluations_per_step,
        }
        if logits_final is not None:
            extras["soft_labels"] = logits_final[best_r].softmax(-1).detach().cpu()
        trace = Trace(
            losses=losses.cpu().tolist(),
            snapshot_iterations=snap_its,
            snapshots=[s[best_r] for s in snaps],
            restart_scores=scores.tolist(),
            best_restart=best_r,
        )
        return Reconstruction(
            images=images,
            labels=labels,
            attack=self.name,
            config=self.config_dict(),
            trace=trace,
            extras=extras,
        )
