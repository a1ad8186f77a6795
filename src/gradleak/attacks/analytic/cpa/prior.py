"""The Cocktail Party Attack's prior-regularised unmixing objective, optimised in torch.

Kariyappa et al. (ICML 2023, Sec. 4) recover the inputs as ``X^ = U G^`` from the whitened
gradient ``G^`` and optimise the unmixing ``U`` to maximise the non-Gaussianity (negentropy) of
every recovered input while penalising, for images, their total variation and, for the
mutual independence of the inputs, the similarity of the unmixing's rows:

    loss(U) = - w_ne mean_i J(u_i G^) + w_tv mean_i TV(u_i G^)
              + w_mi mean_{i != j} exp(T |cos(u_i, u_j)|)

with ``J(y) = (E[log cosh y] - E[log cosh nu])^2`` for a standard normal ``nu`` (Hyvärinen's
negentropy approximation with the logcosh contrast) on unit-variance sources, ``TV`` the
anisotropic total variation of the recovered image (each normalised to unit standard
deviation, since ICA leaves the scale free) and ``T`` a temperature. The terms' exact
normalisations are this module's reading of the paper; the weights (w_ne 1, w_tv 3.1, w_mi
1.47, T 12.4, Adam with lr 1e-3, 25,000 steps in the paper) are the defaults published with
the paper's method and the defaults of ``cpa``. Here ``U`` starts
from FastICA's solution (the paper starts from a random ``U``), so this is a refinement of the
ICA by the paper's priors; with a filtered ICA (:mod:`.filters`) the negentropy is taken on the
filtered sources and the total variation on the unfiltered images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gradleak.priors.tv import anisotropic_tv


def _gaussian_logcosh() -> float:
    """``E[log cosh nu]`` for a standard normal ``nu`` (Gauss-Hermite quadrature, 80 nodes)."""
    x, w = np.polynomial.hermite.hermgauss(80)
    return float(np.sum(w * np.log(np.cosh(np.sqrt(2.0) * x))) / np.sqrt(np.pi))


GAUSSIAN_LOGCOSH = _gaussian_logcosh()


@dataclass(frozen=True)
class PriorWeights:
    """Weights of the paper's objective (see the module docstring).

    Attributes:
        negentropy: ``w_ne``.
        tv: ``w_tv``.
        independence: ``w_mi``.
        temperature: ``T`` of the independence penalty.
    """

    negentropy: float = 1.0
    tv: float = 3.1
    independence: float = 1.47
    temperature: float = 12.4


def logcosh(y: Tensor) -> Tensor:
    """``log cosh y`` without overflow."""
    a = y.abs()
    return a + torch.nn.functional.softplus(-2.0 * a) - math.log(2.0)


def negentropy(sources: Tensor) -> Tensor:
    """(B,) negentropy approximations of unit-variance sources (B, n)."""
    return (logcosh(sources).mean(dim=1) - GAUSSIAN_LOGCOSH) ** 2


def total_variation(sources: Tensor, shape: tuple[int, ...]) -> Tensor:
    """(B,) mean anisotropic TV of each source seen as an image, at unit standard deviation."""
    x = sources / sources.std(dim=1, keepdim=True).clamp_min(1e-12)
    return anisotropic_tv(x.reshape(x.shape[0], 1, *shape))  # each source as one candidate


def independence_penalty(unmixing: Tensor, temperature: float) -> Tensor:
    """``mean_{i != j} exp(T |cos(u_i, u_j)|)`` over the rows of the unmixing."""
    b = unmixing.shape[0]
    if b < 2:
        return unmixing.new_zeros(())
    rows = unmixing / unmixing.norm(dim=1, keepdim=True)
    cos = (rows @ rows.T).abs()
    off = ~torch.eye(b, dtype=torch.bool, device=unmixing.device)
    return torch.exp(temperature * cos[off]).mean()


def objective(unmixing: Tensor, white: Tensor, raw: Tensor | None, shape: tuple[int, ...] | None,
              weights: PriorWeights) -> Tensor:
    """The paper's loss (to minimise) of an unmixing ``U`` (B, B) of whitened rows.

    Args:
        unmixing: (B, B) unmixing of the whitened rows.
        white: (B, n) whitened rows where the ICA model holds (raw or filtered).
        raw: (B, n_raw) the same whitening applied to the unfiltered rows (for the TV prior),
            or None to skip the TV term.
        shape: (C, H, W) of one input, needed with ``raw``.
        weights: the objective's weights.
    """
    rows = unmixing / unmixing.norm(dim=1, keepdim=True)
    loss = -weights.negentropy * negentropy(rows @ white).mean()
    if raw is not None and shape is not None and weights.tv > 0:
        loss = loss + weights.tv * total_variation(rows @ raw, shape).mean()
    if weights.independence > 0:
        loss = loss + weights.independence * independence_penalty(unmixing, weights.temperature)
    return loss


def refine_unmixing(init: Tensor, white: Tensor, raw: Tensor | None,
                    shape: tuple[int, ...] | None, weights: PriorWeights, *, steps: int,
                    lr: float) -> tuple[Tensor, list[float]]:
    """Adam on the paper's objective from ``init`` (B, B); returns row-normalised ``U``.

    Returns:
        The refined (B, B) unmixing (unit rows) and the loss at every step.
    """
    u = init.detach().clone().to(white.dtype).requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    losses: list[float] = []
    for _ in range(steps):
        opt.zero_grad()
        loss = objective(u, white, raw, shape, weights)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(loss.item())
    out = u.detach()
    return out / out.norm(dim=1, keepdim=True), losses
