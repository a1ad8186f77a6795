"""One stage of an optimisation attack: all restarts of one representation, batched.

A stage minimises, for R restarts at once,

    grad_scale * D(T(update(decode(w), y)), observed update) + sum_k a_k prior_k(x)

over the representation's tensors ``w`` (and DLG's soft-label logits ``y`` in joint mode),
where ``decode(w)`` is the candidate batch in the model's input space, ``x`` the same batch
in [0, 1] pixels and ``T`` the attacker's surrogate of the client's declared defense (the
identity unless ``adaptive``). Each iteration evaluates every restart in one batched
forward/backward (:mod:`.objective`), steps a batched optimiser (:mod:`.optimizers`),
projects (:meth:`Representation.project`) and logs the per-restart objective. The restart
with the lowest final gradient-matching distance (priors excluded, as IG's
``scoring_choice='loss'``) is the stage's choice.

Recipes with several stages (GIAS: latent, then generator weights; GIFD: latent, then one
stage per generator layer) start each stage from the previous stage's chosen restart
(:class:`~gradleak.attacks.optimization.representation.StageStart`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from gradleak.attacks.base import Callback, Progress
from gradleak.attacks.optimization.config import OptimizationConfig
from gradleak.attacks.optimization.labelmodes import LabelPlan
from gradleak.attacks.optimization.objective import MatchingObjective
from gradleak.attacks.optimization.optimizers import create_optimizer
from gradleak.attacks.optimization.representation import Box, Representation, StageStart
from gradleak.attacks.optimization.schedules import lr_factors
from gradleak.priors.base import Prior, PriorContext
from gradleak.types import Observation

__all__ = ["Stage", "StageOutcome", "StageSetup", "run_stage"]


@dataclass(frozen=True)
class StageSetup:
    """What a stage's representation is built from.

    Attributes:
        obs: the observation.
        shape: one restart's candidate batch, (B, C, H, W).
        box: the input space in pixel units.
        config: the stage's settings.
        start: the previous stage's chosen restart (None for the first stage).
    """

    obs: Observation
    shape: tuple[int, ...]
    box: Box
    config: OptimizationConfig
    start: StageStart | None


@dataclass(frozen=True)
class Stage:
    """One stage of a recipe: a name, its settings and how to build its representation."""

    name: str
    config: OptimizationConfig
    representation: Callable[[StageSetup], Representation]


@dataclass
class StageOutcome:
    """What one stage produced.

    Attributes:
        name: the stage's name.
        images: the chosen restart's batch in [0, 1], (B, C, H, W), on CPU.
        labels: the chosen restart's labels (B,), on CPU.
        soft_labels: its soft labels (B, K) when labels were optimised, else None.
        scores: final gradient-matching distance of every restart (inf when not finite).
        best: index of the chosen restart.
        losses: objective per iteration and restart, (T, R), on CPU.
        snapshot_iterations / snapshots: the chosen restart's images during the stage.
        start: where a next stage starts.
        extras: engine facts (compiled, vectorized, evaluations per iteration).
    """

    name: str
    images: Tensor
    labels: Tensor
    soft_labels: Tensor | None
    scores: Tensor
    best: int
    losses: Tensor
    snapshot_iterations: list[int]
    snapshots: list[Tensor]
    start: StageStart
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """The chosen restart's gradient-matching distance."""
        return float(self.scores[self.best])


@dataclass
class StageProblem:
    """The resolved pieces a stage runs with."""

    objective: MatchingObjective
    priors: list[tuple[float, Prior]]
    plan: LabelPlan
    box: Box


def _draw(rep: Representation, R: int, gen: torch.Generator, num_classes: int, batch: int,
          start: StageStart | None) -> tuple[list[Tensor], Tensor | None]:
    """Starting tensors of every restart and, if ``num_classes``, soft-label logits.

    Drawn restart by restart (representation, then logits), so adding restarts never changes
    the first ones. A later stage starts its logits from the previous stage's choice.
    """
    parts: list[list[Tensor]] = []
    logit_parts: list[Tensor] = []
    for _ in range(R):
        parts.append(rep.draw(gen))
        if num_classes and (start is None or start.logits is None):
            logit_parts.append(torch.randn((1, batch, num_classes), generator=gen,
                                           dtype=rep.box.lo.dtype))
    tensors = [torch.cat(col).detach().requires_grad_(True) for col in zip(*parts, strict=True)]
    if not num_classes:
        return tensors, None
    ref = tensors[0]
    if start is not None and start.logits is not None:
        logits = start.logits.expand(R, *start.logits.shape[1:]).clone()
    else:
        logits = torch.cat(logit_parts)
    return tensors, logits.to(ref.device).requires_grad_(True)


def run_stage(obs: Observation, stage: Stage, prob: StageProblem, rep: Representation,
              gen: torch.Generator, *, start: StageStart | None = None,
              callback: Callback | None = None, offset: int = 0, total: int | None = None
              ) -> StageOutcome:
    """Runs one stage (see the module docstring) and returns its chosen restart.

    Args:
        obs: the observation.
        stage: the stage (its config sets iterations, restarts, optimiser, priors, ...).
        prob: the objective, priors, label plan and box.
        rep: the stage's representation.
        gen: CPU generator for the starting tensors and Langevin noise.
        start: the previous stage's chosen restart.
        callback: called with :class:`Progress` after every iteration.
        offset / total: iteration count before this stage and over all stages (progress).
    """
    cfg = stage.config
    box, R = prob.box, cfg.restarts
    joint = prob.plan.labels is None
    batch = rep.shape[0]
    tensors, logits = _draw(rep, R, gen, obs.num_classes if joint else 0, batch, start)
    params = tensors if logits is None else [*tensors, logits]
    ref = tensors[0]
    fixed = ref.new_zeros(0, dtype=torch.long)  # unused when the labels are optimised
    if not joint:
        assert prob.plan.labels is not None
        fixed = prob.plan.labels.to(ref.device)

    def targets() -> Tensor:
        return fixed if logits is None else logits.softmax(-1)

    with torch.no_grad():  # the start, decoded once for both checks
        z0, t0 = rep.decode(tensors), targets()
    _check_batching(cfg, prob.objective, z0, t0, R)
    norm = _start_normalizer(cfg, prob.objective, z0, t0)
    ctx = PriorContext(iteration=0, iterations=cfg.iterations)
    lr_now = cfg.lr

    def closure() -> tuple[Tensor, list[Tensor]]:
        with torch.enable_grad():
            z = rep.decode(tensors)
            total_loss, stats = prob.objective(z, targets())
            if norm is not None:
                total_loss = total_loss * norm
            if prob.priors:
                x = box.to_pixels(z)
                ctx.bn_inputs = stats
                for w, prior in prob.priors:
                    total_loss = total_loss + w * prior(x, ctx)
            grads = list(torch.autograd.grad(total_loss.sum(), params))
        if cfg.langevin > 0:
            first = params[0]
            noise = torch.randn(first.shape, generator=gen, dtype=first.dtype).to(first.device)
            grads[0] = grads[0] + (cfg.langevin * lr_now) * noise
        return total_loss.detach(), grads

    opt = create_optimizer(cfg.optimizer, params, dict(cfg.optimizer_settings))
    factors = lr_factors(cfg.schedule, cfg.iterations, cfg.warmup)
    T = cfg.iterations
    every = max(1, T // 20) if cfg.snapshot_every is None else cfg.snapshot_every
    losses = torch.empty(T, R, dtype=ref.dtype, device=ref.device)
    snap_its: list[int] = []
    snaps: list[Tensor] = []

    def snapshot(it: int) -> None:
        snap_its.append(offset + it)
        snaps.append(rep.images(tensors).cpu().clone())

    if every:
        snapshot(0)
    best_val = torch.full((R,), float("inf"), dtype=ref.dtype, device=ref.device)
    best = [p.detach().clone() for p in params] if cfg.keep_best else []
    for it in range(T):
        lr_now = cfg.lr * factors[it]
        ctx.iteration = it
        before = [p.detach().clone() for p in params] if cfg.keep_best else []
        loss = opt.step(closure, lr_now)
        with torch.no_grad():
            rep.project(tensors)
            losses[it] = loss
            if cfg.keep_best:
                better = torch.isfinite(loss) & (loss < best_val)
                best_val = torch.where(better, loss, best_val)
                for b, s in zip(best, before, strict=True):
                    b.copy_(torch.where(better.view(-1, *[1] * (s.dim() - 1)), s, b))
        if every and (it + 1) % every == 0:
            snapshot(it + 1)
        if callback is not None:
            callback(Progress(iteration=offset + it + 1, total=total or T,
                              loss=float(loss.min())))
    if every and snap_its[-1] != offset + T:
        snapshot(T)

    final = best if cfg.keep_best else [p.detach() for p in params]
    final_tensors = final[:len(tensors)]
    logits_final = final[-1] if logits is not None else None
    with torch.enable_grad():
        t_final = fixed if logits_final is None else logits_final.softmax(-1)
        scores, _ = prob.objective(rep.decode(final_tensors), t_final)
    scores = scores.detach().cpu()
    scores = torch.where(torch.isfinite(scores), scores, torch.full_like(scores, float("inf")))
    best_r = int(torch.argmin(scores))
    with torch.no_grad():
        z_best = rep.decode([t[best_r:best_r + 1] for t in final_tensors])[0]
    images = box.to_pixels(z_best).nan_to_num(0.5).clamp(0, 1).detach().cpu()
    if logits_final is None:
        labels, soft = fixed.detach().cpu().clone(), None
    else:
        labels = logits_final[best_r].argmax(-1).cpu()
        soft = logits_final[best_r].softmax(-1).detach().cpu()
    chosen = tuple(t[best_r:best_r + 1].detach().clone() for t in final_tensors)
    kept_logits = None if logits_final is None else logits_final[best_r:best_r + 1].detach()
    return StageOutcome(
        name=stage.name, images=images, labels=labels, soft_labels=soft, scores=scores,
        best=best_r, losses=losses.cpu(), snapshot_iterations=snap_its,
        snapshots=[s[best_r] for s in snaps],
        start=StageStart(tensors=chosen, images=images, representation=rep, logits=kept_logits),
        extras={
            "compiled": prob.objective.compiled,
            "vectorized": bool(prob.objective.vectorized) if R > 1 else None,
            "evaluations_per_iteration": opt.evaluations_per_step,
        },
    )


def _start_normalizer(cfg: OptimizationConfig, objective: MatchingObjective, z0: Tensor,
                      t0: Tensor) -> Tensor | None:
    """``1 / D_r(start)`` per restart when ``normalize_distance`` is set, else None."""
    if not cfg.normalize_distance:
        return None
    with torch.enable_grad():
        d0, _ = objective(z0, t0)
    d0 = d0.detach()
    return torch.where(torch.isfinite(d0) & (d0 > 0), 1.0 / d0, torch.ones_like(d0))


def _check_batching(cfg: OptimizationConfig, objective: MatchingObjective, z0: Tensor,
                    t0: Tensor, R: int) -> None:
    """Resolves ``batching`` and, for vmap, checks once that it is exact for this model."""
    if _batching(cfg.batching, objective, z0) == "loop":
        objective.vectorized = False
    elif R > 1 and objective.vectorized is None:
        if not objective.check_vectorization(z0, t0):
            warnings.warn(
                "batching the restarts with torch.func.vmap changes the gradient for this "
                "model (a torch issue with some layers, e.g. LayerNorm); the restarts run "
                "one after the other instead", stacklevel=4)


def _batching(setting: str, objective: MatchingObjective, z: Tensor) -> str:
    """Resolves ``batching="auto"``: a loop for eager BatchNorm models on CPU, else vmap.

    Compiled objectives always batch: the loop's ``torch.autograd.grad`` splits the compiled
    graph, and torch 2.13 then returns distances disconnected from the input for BN models.
    """
    if setting != "auto":
        return setting
    loop = z.device.type == "cpu" and bool(objective.bn_layers) and not objective.compiled
    return "loop" if loop else "vmap"
