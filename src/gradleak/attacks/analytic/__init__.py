"""Analytic (closed-form) attacks; each module registers its attack on import.

* ``bias``: input from a linear layer's weight / bias gradient ratio (Phong et al., 2017;
  Geiping et al., 2020, Sec. 4); :func:`recover_linear_input` for later layers'
  features (what a batch of two does to it: :mod:`gradleak.experiments.ambiguity`).
* ``rgap``: recursive layer-by-layer inversion with a rank analysis (Zhu & Blaschko, 2021).
* ``spear``: exact batch recovery from a first ReLU layer (Dimitrov et al., 2024).
* ``cpa``: the Cocktail Party Attack, large batches unmixed by ICA (Kariyappa et al., 2023).

Closed-form attacks share :class:`AnalyticAttack` (config validated when built, partial
results marked with ``Reconstruction.expected``).
"""

from gradleak.attacks.analytic import bias, cpa, rgap, spear  # noqa: F401  (registration)
from gradleak.attacks.analytic.base import AnalyticAttack, AnalyticResult
from gradleak.attacks.analytic.bias import (
    BiasAttack,
    FeatureRecovery,
    invert_features,
    recover_linear_input,
)
from gradleak.attacks.analytic.cpa import CocktailParty
from gradleak.attacks.analytic.rgap import RGAP, rank_table
from gradleak.attacks.analytic.spear import SPEAR

__all__ = [
    "RGAP",
    "AnalyticAttack",
    "AnalyticResult",
    "CocktailParty",
    "SPEAR",
    "BiasAttack",
    "FeatureRecovery",
    "invert_features",
    "rank_table",
    "recover_linear_input",
]
