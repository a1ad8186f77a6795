"""R-GAP: recursive closed-form gradient inversion with a per-layer rank analysis.

Zhu & Blaschko, "R-GAP: Recursive Gradient Attack on Privacy", ICLR 2021 (official code:
JunyiZhu-AI/R-GAP). For a chain of linear / convolutional layers ``z_l = W_l x_l (+ b_l)``,
``x_{l+1} = act_l(z_l)``, and one input, the gradient of layer ``l`` is linear in its input:
``dL/dW_l = k_l x_l^T`` (unrolled for a convolution) with ``k_l = dL/dz_l``. Going from the
output to the input:

1. the last layer: ``k`` is the bias gradient, or, for R-GAP's single-logit logistic model
   without bias, ``k`` follows from the scalar equation ``w . dL/dw = k z`` with
   ``k = sigmoid(z) - y`` (both labels, and both roots where there are two, are tried and
   the most self-consistent reconstruction is kept);
2. each earlier layer: ``z_l = act_l^{-1}(x_{l+1})`` (the input just recovered) and
   ``k_l = (W_{l+1}^T k_{l+1}) * act_l'(z_l)``; the input ``x_l`` solves the least-squares
   system stacking the weight-gradient constraints, the forward constraints
   ``W_l x_l = z_l - b_l`` through the unrolled convolution, and the padding constraint
   (zero-padded entries are eliminated).

Every layer's system is reported in ``Reconstruction.extras["rank_analysis"]``: number of
unknowns and constraints, numerical rank, and whether the layer is invertible.
All linear algebra runs in float64.

Modules: :mod:`~.activations` (inverting activations), :mod:`~.chain` (the model as a chain
of stages), :mod:`~.last_layer` (the last layer's ``k``), :mod:`~.systems` (one layer's
system), :mod:`~.solvers` (solving it with its rank), :mod:`~.recursion` (the recursion),
:mod:`~.attack` (the registered attack and the rank table).
"""

from __future__ import annotations

from gradleak.attacks.analytic.rgap.activations import F64, INVERSIONS, Inversion
from gradleak.attacks.analytic.rgap.attack import RGAP, rank_table
from gradleak.attacks.analytic.rgap.chain import Stage, chain_problem, parse_chain
from gradleak.attacks.analytic.rgap.last_layer import Start, last_layer_starts, logistic_margins
from gradleak.attacks.analytic.rgap.recursion import (
    Recursion,
    positively_homogeneous,
    range_violation,
)
from gradleak.attacks.analytic.rgap.solvers import (
    SOLVERS,
    Solution,
    solve_gram,
    solve_linear,
    solve_svd,
)
from gradleak.attacks.analytic.rgap.systems import (
    SYSTEMS,
    LayerSystem,
    conv_patch_indices,
    conv_system,
    linear_system,
)

__all__ = [
    "F64",
    "INVERSIONS",
    "Inversion",
    "LayerSystem",
    "RGAP",
    "Recursion",
    "SOLVERS",
    "SYSTEMS",
    "Solution",
    "Stage",
    "Start",
    "chain_problem",
    "conv_patch_indices",
    "conv_system",
    "last_layer_starts",
    "linear_system",
    "logistic_margins",
    "parse_chain",
    "positively_homogeneous",
    "range_violation",
    "rank_table",
    "solve_gram",
    "solve_linear",
    "solve_svd",
]
