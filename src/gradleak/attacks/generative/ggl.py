"""The ``ggl`` recipe: Li et al., "Auditing Privacy Defenses in Federated Learning via
Generative Gradient Leakage", CVPR 2022.

GGL searches only the latent space of a generator trained on public data of the client's
domain, without gradients: CMA-ES (the maintained ``cma`` library, Hansen's reference
implementation) proposes a population of codes per generation, each is decoded and scored by

    l2(T(update(G(w), y)), observed update) / L + kl_weight * sum_b KL(w_b)

where ``L`` is the number of parameter tensors, ``KL(w_b) = -1/2 sum(1 + log(s^2 + 1e-10) -
m^2 - s^2)`` with ``m``, ``s`` the mean and standard deviation of the entries of image ``b``'s
code (the authors' ``reconstructor.py``: it keeps the codes near a standard normal), and ``T``
the identity, or in ``adaptive`` mode the defense estimated from the received update
(:mod:`.adaptive`). The best code seen is returned. Labels must be known or recovered first
(the authors read them off the last layer, iDLG-style).

Defaults follow the authors' CelebA 32 px setting: KL weight 0.1, 50 candidates per
generation, codes started at zero; ``generations`` sets the budget (the authors run 500).

Example:
    >>> import gradleak as gl
    >>> rec = gl.reconstruct(obs, attack="ggl", generative_prior="faces",
    ...                      adaptive=True)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import cma
import numpy as np
import torch
from torch import Tensor

from gradleak.attacks.base import Callback, Progress, register_attack, timed_run
from gradleak.attacks.generative.adaptive import estimate_defense
from gradleak.attacks.generative.recipe import GenerativeRecipe
from gradleak.attacks.generative.representations import Latent
from gradleak.attacks.optimization.config import check_int, check_positive, finite_number
from gradleak.attacks.optimization.labelmodes import (
    batch_size_of,
    known_label_mode,
    label_requirements,
    plan_labels,
)
from gradleak.attacks.optimization.objective import MatchingObjective
from gradleak.attacks.optimization.representation import Box
from gradleak.errors import ConfigError, ThreatModelError
from gradleak.types import Observation, Reconstruction, Trace

__all__ = ["GGL", "GGLConfig", "latent_kl"]


def latent_kl(w: Tensor) -> Tensor:
    """GGL's KL term of codes (R, B, d): per restart, summed over images, (R,)."""
    m = w.mean(-1)
    v = w.var(-1, unbiased=True)
    return (-0.5 * (1 + torch.log(v + 1e-10) - m * m - v)).sum(-1)


@dataclass(frozen=True)
class GGLConfig:
    """GGL's defaults (Li et al., CVPR 2022; the authors' CelebA 32 px setting).

    Attributes:
        generative_prior: a GenerativePrior, a shipped prior's name or a saved prior's path.
        generations: CMA-ES generations (ask / tell rounds).
        population: candidates per generation (the authors' ``num_samples``).
        sigma: CMA-ES's initial step size (the prior's codes are standard normal).
        kl_weight: weight of the KL term on the codes (0 disables it).
        adaptive: estimate the client's defense from its update and apply it to every
            candidate's gradient before matching.
        labels: ``"given"``, ``"auto"`` (given if shared, else iDLG for one image) or a label
            strategy (``"ilrg"``, ...); GGL does not optimise labels.
        snapshot_every: keep a snapshot of the best code every this many generations
            (None: about 20; 0: none).
    """

    generative_prior: Any = None
    generations: int = 200
    population: int = 50
    sigma: float = 1.0
    kl_weight: float = 0.1
    adaptive: bool = False
    labels: str = "auto"
    snapshot_every: int | None = None

    def __post_init__(self) -> None:
        check_int("generations", self.generations, 1)
        check_int("population", self.population, 2)
        check_positive("sigma", self.sigma)
        if not finite_number(self.kl_weight) or self.kl_weight < 0:
            raise ConfigError(f"kl_weight must be a finite number >= 0, got {self.kl_weight!r}")
        if not isinstance(self.adaptive, bool):
            raise ConfigError(f"adaptive must be True or False, got {self.adaptive!r}")
        if not known_label_mode(self.labels) or self.labels == "joint":
            raise ConfigError(f"ggl cannot use labels={self.labels!r}: use 'given', 'auto' or "
                              "a label strategy such as 'ilrg'")
        if self.snapshot_every is not None:
            check_int("snapshot_every", self.snapshot_every, 0)


@register_attack("ggl")
class GGL(GenerativeRecipe):
    """GGL (Li et al., CVPR 2022): CMA-ES over a generator's latent codes.

    Example:
        >>> rec = gl.reconstruct(obs, attack="ggl", generative_prior=prior)  # doctest: +SKIP
    """

    Config: ClassVar[type] = GGLConfig
    requires: ClassVar[frozenset[str]] = frozenset({"known_batch"})
    config: GGLConfig

    def requirements(self) -> set[str]:
        """The recipe's requirements plus those of its label setting."""
        return set(self.requires) | set(label_requirements(self.config.labels))

    def reconstruct(self, obs: Observation, *, generator: torch.Generator | None = None,
                    callback: Callback | None = None) -> Reconstruction:
        """Runs the CMA-ES search (see the module docstring).

        Raises:
            ThreatModelError: no prior, or the labels cannot be known or recovered.
            ConfigError: the prior does not fit the observation.
        """
        self.check(obs)
        return timed_run(lambda gen: self._search(obs, gen, callback), generator)

    def _search(self, obs: Observation, gen: torch.Generator,
                callback: Callback | None) -> Reconstruction:
        cfg = self.config
        plan = plan_labels(cfg.labels, obs)
        if plan.labels is None:
            raise ThreatModelError("ggl needs the labels: share them, or recover them with "
                                   "labels='ilrg' (any batch) or 'idlg' (one image)")
        batch = batch_size_of(obs)
        box = Box.of(obs)
        rep = Latent((batch, *obs.data_shape), box, self.prior_for(obs))
        objective = MatchingObjective(obs, distance="l2", layer_weights="uniform",
                                      bn_stats=False, batch_size=batch,
                                      scale=1.0 / len(obs.param_names))
        if cfg.adaptive:
            objective.transform = estimate_defense(objective.space)
        labels = plan.labels.to(box.lo.device)
        d = rep.latent_dim

        def score(codes: np.ndarray) -> Tensor:
            w = torch.as_tensor(codes, dtype=box.lo.dtype, device=box.lo.device)
            w = w.reshape(len(codes), batch, d)
            with torch.enable_grad():
                match, _ = objective(rep.decode([w]), labels)
            match = match.detach()
            return match + cfg.kl_weight * latent_kl(w) if cfg.kl_weight else match

        seed = int(torch.randint(1, 2**31 - 1, (1,), generator=gen))
        es = cma.CMAEvolutionStrategy(np.zeros(batch * d), cfg.sigma,
                                      {"popsize": cfg.population, "seed": seed,
                                       "verbose": -9, "maxiter": cfg.generations})
        T = cfg.generations
        every = max(1, T // 20) if cfg.snapshot_every is None else cfg.snapshot_every
        best_val, best_code = float("inf"), np.zeros(batch * d)
        losses: list[list[float]] = []
        snap_its: list[int] = []
        snaps: list[Tensor] = []

        def snapshot(it: int) -> None:
            w = torch.as_tensor(best_code, dtype=box.lo.dtype).reshape(1, batch, d)
            snap_its.append(it)
            snaps.append(rep.images([w.to(box.lo.device)])[0].cpu())

        if every:
            snapshot(0)
        for it in range(T):
            cands = np.asarray(es.ask())
            vals = score(cands).cpu()
            vals = torch.where(torch.isfinite(vals), vals, torch.full_like(vals, float("inf")))
            es.tell(list(cands), vals.double().tolist())
            losses.append(vals.tolist())
            i = int(torch.argmin(vals))
            if float(vals[i]) < best_val:
                best_val, best_code = float(vals[i]), cands[i].copy()
            if every and (it + 1) % every == 0:
                snapshot(it + 1)
            if callback is not None:
                callback(Progress(iteration=it + 1, total=T, loss=best_val))
        if every and snap_its[-1] != T:
            snapshot(T)
        w = torch.as_tensor(best_code, dtype=box.lo.dtype, device=box.lo.device)
        images = rep.images([w.reshape(1, batch, d)])[0].nan_to_num(0.5).cpu()
        trace = Trace(losses=losses, snapshot_iterations=snap_its, snapshots=snaps,
                      restart_scores=[best_val], best_restart=0)
        return Reconstruction(
            images=images, labels=plan.labels.detach().cpu().clone(), attack=self.name,
            config=self.config_dict(), trace=trace,
            extras={"labels_source": plan.source, "evaluations": T * cfg.population,
                    "adaptive": cfg.adaptive},
        )
