"""The one gradient-matching engine behind ``dlg``, ``idlg``, ``ig``, ``gradinversion``, ...

:class:`OptimizationAttack` minimises, for R restarts at once,

    grad_scale * D(update(decode(w), y), observed update) + sum_k a_k prior_k(x)

over the tensors ``w`` of a *representation* (:mod:`.representation`: the pixels of the dummy
batch by default, a generator's latent or weights for the generative recipes) and, for DLG's
joint mode, soft labels ``y``; ``x`` is the decoded batch in [0, 1] pixels. A recipe is one or
more *stages* (:mod:`.stage`), each starting from the previous stage's chosen restart; every
stage runs all restarts in one batched computation and chooses the restart with the lowest
final gradient-matching distance (priors excluded, as IG's ``scoring_choice='loss'`` and
breaching's restart scoring). The recipe's :meth:`OptimizationAttack.choose_stage` picks the
stage whose result is returned (the last one by default; GIFD: the best-matching one).

References:
    Zhu, Liu & Han, "Deep Leakage from Gradients", NeurIPS 2019.
    Zhao, Mopuri & Bilen, "iDLG: Improved Deep Leakage from Gradients", arXiv 2001.02610.
    Geiping, Bauermeister, Dröge & Moeller, "Inverting Gradients - How easy is it to break
    privacy in federated learning?", NeurIPS 2020.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradleak.attacks.base import Attack, Callback, timed_run
from gradleak.attacks.optimization.compilation import compiled_objective, resolve_compile
from gradleak.attacks.optimization.config import OptimizationConfig
from gradleak.attacks.optimization.labelmodes import (
    LabelPlan,
    batch_size_of,
    label_requirements,
    plan_labels,
)
from gradleak.attacks.optimization.objective import MatchingObjective
from gradleak.attacks.optimization.representation import (
    Box,
    Pixels,
    Representation,
    StageStart,
)
from gradleak.attacks.optimization.stage import (
    Stage,
    StageOutcome,
    StageProblem,
    StageSetup,
    run_stage,
)
from gradleak.errors import ConfigError, RegistryError, ThreatModelError
from gradleak.priors.base import Prior, build_priors
from gradleak.types import Observation, Reconstruction, Trace

__all__ = ["OptimizationAttack", "pixels"]


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

    # ------------------------------------------------------------------ stages
    def stages(self, obs: Observation) -> list[Stage]:
        """The recipe's stages (default: one stage over pixels with the recipe's config)."""
        return [Stage("pixels", self.config, pixels)]

    def choose_stage(self, outcomes: Sequence[StageOutcome]) -> int:
        """Which stage's result is returned (default: the last one)."""
        return len(outcomes) - 1

    # ------------------------------------------------------------------ setup
    def _priors(self, obs: Observation, spec: Any) -> list[tuple[float, Prior]]:
        try:
            priors = build_priors(spec)
        except RegistryError as exc:
            raise ConfigError(f"attack {self.name!r}: {exc}") from None
        for _, prior in priors:
            prior.prepare(obs)
        return priors

    def _problem(self, obs: Observation, cfg: OptimizationConfig, plan: LabelPlan
                 ) -> StageProblem:
        """The objective, priors and box of one stage with settings ``cfg``."""
        batch = batch_size_of(obs)
        priors = self._priors(obs, cfg.priors)
        bn_stats = any(p.needs_bn_stats for _, p in priors)

        transform = adaptive_transform(obs, self.name) if cfg.adaptive else None

        def build() -> MatchingObjective:
            return MatchingObjective(obs, distance=cfg.distance, layer_weights=cfg.layer_weights,
                                     bn_stats=bn_stats, batch_size=batch, scale=cfg.grad_scale,
                                     transform=transform)

        if resolve_compile(cfg.compile, obs, batch=batch, restarts=cfg.restarts,
                           iterations=cfg.iterations):
            key = (cfg.distance, cfg.layer_weights, bn_stats, batch, cfg.batching,
                   cfg.grad_scale, cfg.adaptive)
            objective = compiled_objective(obs, key, build)
        else:
            objective = build()
        return StageProblem(objective, priors, plan, Box.of(obs))

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
        return timed_run(lambda gen: self._run(obs, gen, callback), generator)

    def reconstruct_from(self, obs: Observation, images: Tensor, *,
                         generator: torch.Generator | None = None,
                         callback: Callback | None = None) -> Reconstruction:
        """Like :meth:`reconstruct`, but the first stage starts from ``images`` (refinement).

        Args:
            obs: what the server observed.
            images: a starting batch in [0, 1], (B, C, H, W) (e.g. a learned inverter's
                output); every restart starts there.
        """
        self.check(obs)
        shape = (batch_size_of(obs), *obs.data_shape)
        if tuple(images.shape) != shape:
            raise ConfigError(f"start images are {tuple(images.shape)}; this observation needs "
                              f"{shape}")
        start = StageStart(tensors=(), images=images.detach(), representation=None)
        return timed_run(lambda gen: self._run(obs, gen, callback, start), generator)

    def _run(self, obs: Observation, gen: torch.Generator,
             callback: Callback | None, start: StageStart | None = None) -> Reconstruction:
        plan = plan_labels(self.config.labels, obs)
        stages = self.stages(obs) + [
            Stage(f"then-{i + 1}", cfg, pixels)
            for i, cfg in enumerate(self.config.stage_configs())]
        total = sum(st.config.iterations for st in stages)
        shape = (batch_size_of(obs), *obs.data_shape)
        outcomes: list[StageOutcome] = []
        offset = 0
        for stage in stages:
            prob = self._problem(obs, stage.config, plan)
            setup = StageSetup(obs=obs, shape=shape, box=prob.box, config=stage.config,
                               start=start)
            rep = stage.representation(setup)
            out = run_stage(obs, stage, prob, rep, gen, start=start, callback=callback,
                            offset=offset, total=total)
            outcomes.append(out)
            start = out.start
            offset += stage.config.iterations
        return self._assemble(outcomes, plan)

    def _assemble(self, outcomes: Sequence[StageOutcome], plan: LabelPlan) -> Reconstruction:
        """The chosen stage's result, with the trace of every stage."""
        chosen = outcomes[self.choose_stage(outcomes)]
        extras: dict[str, Any] = {
            "labels_source": plan.source,
            "diverged": not bool(torch.isfinite(chosen.scores[chosen.best])),
            **chosen.extras,
        }
        if len(outcomes) > 1:
            extras["stages"] = [{"name": o.name, "iterations": int(o.losses.shape[0]),
                                 "score": o.score} for o in outcomes]
            extras["chosen_stage"] = chosen.name
        if chosen.soft_labels is not None:
            extras["soft_labels"] = chosen.soft_labels
        losses = [row for o in outcomes for row in o.losses.tolist()]
        snap_its = [i for o in outcomes for i in o.snapshot_iterations]
        snaps = [s for o in outcomes for s in o.snapshots]
        trace = Trace(
            losses=losses,
            snapshot_iterations=snap_its,
            snapshots=snaps,
            restart_scores=chosen.scores.tolist(),
            best_restart=chosen.best,
        )
        return Reconstruction(
            images=chosen.images,
            labels=chosen.labels,
            attack=self.name,
            config=self.config_dict(),
            trace=trace,
            extras=extras,
        )


def adaptive_transform(obs: Observation, attack: str) -> Callable[[Tensor], Tensor]:
    """The surrogate of ``obs``'s declared defense as a ``(R, P) -> (R, P)`` transform.

    Raises:
        ThreatModelError: the client declares no defense, or one without a surrogate.
    """
    from gradleak.defenses.adaptive import available, build_surrogate

    surrogate = None if obs.defense is None else build_surrogate(obs.defense, obs)
    if surrogate is None:
        raise ThreatModelError(
            f"attack {attack!r} with adaptive=True needs a declared update defense with a "
            f"surrogate ({', '.join(available())}); this client declares "
            f"{obs.defense or 'no defense'}")
    sizes = [int(u.numel()) for u in obs.update]
    return lambda sim: surrogate(sim, sizes)


def pixels(setup: StageSetup) -> Representation:
    """The default representation: the candidate batch's pixels (model input space)."""
    start = setup.start.images if setup.start is not None else None
    return Pixels(setup.shape, setup.box, init=setup.config.init, boxed=setup.config.boxed,
                  start=start)
