"""The Cocktail Party Attack (Kariyappa et al., ICML 2023): ICA unmixing of the first layer.

* :mod:`.attack`: the ``cpa`` recipe (:class:`CocktailParty`, FastICA via scikit-learn).
* :mod:`.filters`: innovation filters the unmixing can be estimated on.
* :mod:`.prior`: the paper's prior-regularised objective (negentropy, TV, independence).
* :mod:`.unmix`: whitening, and inputs from an unmixing via the bias gradient.
"""

from gradleak.attacks.analytic.cpa.attack import CocktailParty, fastica_unmixing
from gradleak.attacks.analytic.cpa.filters import FILTERS, filter_rows
from gradleak.attacks.analytic.cpa.prior import PriorWeights, refine_unmixing
from gradleak.attacks.analytic.cpa.unmix import inputs_from_unmixing, unmix_with, whiten

__all__ = [
    "FILTERS",
    "CocktailParty",
    "PriorWeights",
    "fastica_unmixing",
    "filter_rows",
    "inputs_from_unmixing",
    "refine_unmixing",
    "unmix_with",
    "whiten",
]
