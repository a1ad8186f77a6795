"""SPEAR (Dimitrov et al., NeurIPS 2024): exact batch recovery from a first ReLU layer.

Modules: :mod:`.factorisation` (``dL/dW = M V^T`` and its measured noise), :mod:`.search`
(classification and the activation-pattern filter), :mod:`.proposals` and
:mod:`.subspaces` (candidate generators), :mod:`.verify` (solve and self-check),
:mod:`.attack` (the registered ``spear`` attack and its budget).
"""

from gradleak.attacks.analytic.spear.attack import SPEAR

__all__ = ["SPEAR"]
