"""R-GAP: the last layer's ``k = dL/dz`` (from the bias gradient or the logistic equation).

Zhu & Blaschko, ICLR 2021, Sec. 3 (the single-logit logistic model without bias).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import scipy.optimize as sopt
import torch
from torch import Tensor, nn

from gradleak.attacks.analytic.rgap.activations import F64
from gradleak.attacks.analytic.rgap.chain import Stage
from gradleak.errors import ThreatModelError
from gradleak.types import Observation


def _logistic_residual(s: float) -> float:
    """``h(s) = -s / (1 + e^s)``: ``w . dL/dw`` as a function of the signed margin ``s``."""
    return -s / (1.0 + math.exp(s)) if s < 700 else 0.0


_S_STAR = 1.2784645427610738  # argmin of h (solves 1 + e^s (1 - s) = 0)


def logistic_margins(c: float) -> list[float]:
    """All margins ``s = y' z`` (``y' = 2y - 1``) with ``h(s) = c`` for the logistic loss.

    ``c = w . dL/dw`` is observed. ``c > 0`` (a misclassified input) has one root ``s < 0``;
    ``h_min < c < 0`` has two roots ``0 < s1 < 1.278 < s2``.
    """
    h_min = _logistic_residual(_S_STAR)
    if c > 0:
        lo = -(abs(c) + 50.0)
        return [sopt.brentq(lambda s: _logistic_residual(s) - c, lo, 0.0, xtol=1e-300, rtol=1e-15)]
    if c == 0 or c <= h_min:
        return [_S_STAR] if c == h_min else []
    f = lambda s: _logistic_residual(s) - c  # noqa: E731
    roots = [sopt.brentq(f, 0.0, _S_STAR, xtol=1e-300, rtol=1e-15)]
    hi = _S_STAR
    while f(hi) < 0 and hi < 690:
        hi *= 2
    if f(hi) > 0:
        roots.append(sopt.brentq(f, _S_STAR, hi, xtol=1e-300, rtol=1e-15))
    return roots


@dataclass(frozen=True)
class Start:
    """One hypothesis for the last layer: its error signal ``k`` and the label it implies."""

    k: Tensor
    label: int | None
    note: str
    logit: float | None = None


def last_layer_starts(obs: Observation, stage: Stage, grads: dict[str, Tensor]) -> list[Start]:
    """The candidate error signals ``k = dL/dz`` of the last (linear) layer."""
    layer = stage.layer
    assert isinstance(layer, nn.Linear)
    bias_key = f"{stage.name}.bias"
    if layer.bias is not None and bias_key in grads:
        k = grads[bias_key].to(F64).reshape(-1)
        if obs.loss == "logistic" and k.numel() == 1:
            label = int(k.item() < 0)
        else:
            label = int(torch.argmin(k).item())
        return [Start(k, label, "bias gradient")]
    g = grads[f"{stage.name}.weight"].to(F64).reshape(-1)
    w = layer.weight.detach().to(F64).reshape(-1)
    c = float(w @ g)
    labels = [int(obs.labels[0])] if obs.labels is not None else [1, 0]
    starts = []
    for y in labels:
        sign = 2 * y - 1
        for s in logistic_margins(c):
            z = sign * s
            err = 1.0 / (1.0 + math.exp(-z)) - y
            starts.append(
                Start(torch.tensor([err], dtype=F64), y, f"label {y}, logit {z:.6g}", z)
            )
    if not starts:
        raise ThreatModelError(
            "an informative last-layer gradient (w . dL/dw has no logistic-loss solution)"
        )
    return starts
