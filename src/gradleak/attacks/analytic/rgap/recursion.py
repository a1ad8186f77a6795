"""R-GAP: the output-to-input recursion over the chain's stages.

Zhu & Blaschko, ICLR 2021, Sec. 3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradleak.attacks.analytic.rgap.activations import F64, INVERSIONS
from gradleak.attacks.analytic.rgap.chain import Stage
from gradleak.attacks.analytic.rgap.last_layer import Start
from gradleak.attacks.analytic.rgap.solvers import Solution, solve_linear
from gradleak.attacks.analytic.rgap.systems import SYSTEMS, LayerSystem


def _adjoint(stage: Stage, k: Tensor) -> Tensor:
    """``W^T k``: the error signal at the layer's input (float64, unbatched)."""
    layer = stage.layer
    w = layer.weight.detach().to(F64)  # type: ignore[operator]
    if isinstance(layer, nn.Linear):
        return w.T @ k.reshape(-1)
    assert isinstance(layer, nn.Conv2d)
    u = torch.zeros((1, *stage.in_shape), dtype=F64, requires_grad=True)
    out = F.conv2d(u, w, None, layer.stride, layer.padding)
    (gu,) = torch.autograd.grad(out, u, grad_outputs=k.reshape(out.shape))
    return gu[0]


class Recursion:
    """The layer-by-layer inversion from one last-layer hypothesis, advanced one layer a step.

    Attributes:
        start: the hypothesis.
        x: the input of the layer solved last (finally: the model input, flattened).
        report: one rank-analysis row per solved layer (last layer first until finished).
        residual: sum of the layers' relative residuals so far.
    """

    def __init__(self, stages: list[Stage], grads: dict[str, Tensor], start: Start,
                 solver: Callable[[LayerSystem, float], Solution], rank_tol: float) -> None:
        self.stages, self.grads, self.start = stages, grads, start
        self.solver, self.rank_tol = solver, rank_tol
        self.k = start.k
        self.x = torch.zeros(0, dtype=F64)
        self.report: list[dict[str, Any]] = []
        self.residual = 0.0
        self.next_index = len(stages) - 1

    @property
    def done(self) -> bool:
        """Whether the input layer has been solved."""
        return self.next_index < 0

    def step(self) -> None:
        """Solves the next layer (towards the input)."""
        idx = self.next_index
        stage = self.stages[idx]
        z: Tensor | None = None
        known: Tensor | None = None
        if idx < len(self.stages) - 1:
            inv = INVERSIONS[type(stage.act)](stage.act)
            x_next = self.x.reshape(stage.out_shape)
            z, known = inv.inverse(x_next)
            back = _adjoint(self.stages[idx + 1], self.k).reshape(stage.out_shape)
            self.k = back * inv.derivative(z, x_next)
        g_weight = self.grads[f"{stage.name}.weight"].to(F64)
        system = SYSTEMS[type(stage.layer)](stage, self.k, g_weight, z, known)
        if system.rank_one is not None:
            sol = solve_linear(system, self.solver, self.rank_tol)
        else:
            sol = self.solver(system, self.rank_tol)
        self.x = torch.from_numpy(sol.x).to(F64)
        self.residual += sol.residual
        self.report.append(
            {
                "layer": stage.name,
                "type": type(stage.layer).__name__,
                "input_shape": list(stage.in_shape),
                "unknowns": system.unknowns,
                "padding_entries": system.padding,
                "gradient_constraints": system.gradient_constraints,
                "forward_constraints": system.forward_constraints,
                "constraints": system.gradient_constraints + system.forward_constraints,
                "rank": sol.rank,
                "deficiency": system.unknowns - sol.rank,
                "invertible": sol.rank == system.unknowns,
                "condition": sol.condition,
                "relative_residual": sol.residual,
            }
        )
        self.next_index -= 1


def positively_homogeneous(stages: list[Stage]) -> bool:
    """Whether ``f(a x) = a f(x)`` for ``a > 0``: no biases, (Leaky)ReLU/identity activations.

    Then a last-layer hypothesis and its rescaled twin (the other root of R-GAP's logistic
    equation, same label) give the same input up to the factor ``z_twin / z``.
    """
    for st in stages:
        if getattr(st.layer, "bias", None) is not None:
            return False
        if not isinstance(st.act, nn.LeakyReLU | nn.ReLU | nn.Identity):
            return False
    return True


def range_violation(images: Tensor) -> float:
    """Relative distance of images from the valid range [0, 1] (0 when inside)."""
    return float((images - images.clamp(0, 1)).norm() / images.norm().clamp_min(1e-300))
