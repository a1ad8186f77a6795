"""The ``gias`` recipe: Jeon et al., "Gradient Inversion with Generative Image Prior",
NeurIPS 2021.

GIAS searches a generator trained on public images of the client's domain in two stages:

1. **latent search**: one code per image, cosine gradient matching, Adam with IG's step decay
   (x0.1 at 3/8, 5/8, 7/8), restarts run together and the best kept by matching loss;
2. **generator fine-tuning**: the chosen codes frozen, a separate copy of the generator's
   weights per image optimised with the same objective (Adam, lr ``weight_lr``, the same
   step decay), so the image can leave the generator's range where the gradient asks for it.

Defaults follow the authors' code (``ml-postech/gradient-inversion-generative-image-prior``,
32 px script): cosine distance over all layers, latent lr 0.03, TV 1e-6, 500 latent
iterations and 5000 weight iterations, weight lr 1e-3, 4 restarts. There is no penalty on
the weights' distance from the prior in the authors' code, and none here.

Example:
    >>> import gradleak as gl
    >>> rec = gl.reconstruct(obs, attack="gias", generative_prior="digits")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gradleak.attacks.base import register_attack
from gradleak.attacks.generative.recipe import GenerativeRecipe
from gradleak.attacks.generative.representations import Latent, LatentAndWeights
from gradleak.attacks.optimization.config import (
    OptimizationConfig,
    check_int,
    check_positive,
)
from gradleak.attacks.optimization.engine import OptimizationAttack
from gradleak.attacks.optimization.stage import Stage
from gradleak.types import Observation

__all__ = ["GIAS", "GIASConfig"]


def _gias_priors() -> Mapping[str, Any]:
    return {"tv": 1e-6}


@dataclass(frozen=True)
class GIASConfig(OptimizationConfig):
    """GIAS's defaults (Jeon et al., NeurIPS 2021; the authors' 32 px script).

    The engine's fields (``iterations``, ``lr``, ``restarts``, ``optimizer``, ``schedule``,
    ``priors``, ...) set the latent stage.

    Attributes:
        generative_prior: a GenerativePrior, a shipped prior's name or a saved prior's path.
        weight_iterations: iterations of the generator fine-tuning stage (0 skips it: the
            latent search alone, "GIAS w/o stage 2").
        weight_lr: Adam's step size for the generator copies.
    """

    iterations: int = 500
    restarts: int = 4
    lr: float = 0.03
    optimizer: str = "adam"
    schedule: str = "step"
    distance: str = "cosine"
    priors: Mapping[str, Any] = field(default_factory=_gias_priors)
    labels: str = "auto"
    boxed: bool = False
    generative_prior: Any = None
    weight_iterations: int = 5000
    weight_lr: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("weight_iterations", self.weight_iterations, 0)
        check_positive("weight_lr", self.weight_lr)


@register_attack("gias")
class GIAS(GenerativeRecipe, OptimizationAttack):
    """GIAS (Jeon et al., NeurIPS 2021): latent search, then per-image generator weights.

    Example:
        >>> rec = gl.reconstruct(obs, attack="gias", generative_prior=prior)  # doctest: +SKIP
    """

    Config: ClassVar[type] = GIASConfig
    config: GIASConfig

    def stages(self, obs: Observation) -> list[Stage]:
        """Latent search with the recipe's settings, then the weights stage (1 restart)."""
        prior = self.prior_for(obs)
        cfg = self.config
        out = [Stage("latent", cfg, lambda s: Latent(s.shape, s.box, prior))]
        if cfg.weight_iterations:
            tune = dataclasses.replace(cfg, iterations=cfg.weight_iterations, lr=cfg.weight_lr,
                                       restarts=1, langevin=0.0)
            out.append(Stage("weights", tune,
                             lambda s: LatentAndWeights(s.shape, s.box, prior, s.start)))
        return out
