"""What the generative recipes share: the ``generative_prior`` setting and its checks."""

from __future__ import annotations

from typing import Any

from torch import nn

from gradleak.attacks.base import Attack
from gradleak.attacks.generative.prior_fit import check_fit, describe_prior, resolve_prior
from gradleak.types import Observation

__all__ = ["GenerativeRecipe"]


class GenerativeRecipe(Attack):
    """Mixin of the attacks whose config has a ``generative_prior`` field.

    The prior is resolved (object, shipped name or path) and checked against the
    observation before anything runs; the run's recorded config describes the prior instead
    of holding the module.
    """

    def prior_for(self, obs: Observation) -> nn.Module:
        """The configured prior, checked to make images of the observation's shape."""
        prior = resolve_prior(self.config.generative_prior, self.name)
        check_fit(prior, obs, self.name)
        return prior

    def check(self, obs: Observation) -> None:
        """The threat-model requirements, then the prior's presence and fit."""
        super().check(obs)
        self.prior_for(obs)

    def config_dict(self) -> dict[str, Any]:
        """The config with the prior described by its metadata (JSON-friendly)."""
        out = super().config_dict()
        out["generative_prior"] = describe_prior(self.config.generative_prior)
        return out
