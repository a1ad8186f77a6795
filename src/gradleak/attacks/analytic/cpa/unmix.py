"""Whitening, and inputs from an unmixing with sign, scale and offset fixed by the bias gradient.

For a fully connected first layer ``Z = W X + b`` with batch ``B``, the weight gradient is
``G = dL/dW = Dz X`` (``Dz`` the (m, B) output gradients, ``X`` the (B, n) inputs) and the bias
gradient is ``dL/db = Dz 1``. An unmixing ``V`` (B, m) separates the centred mixtures into
sources that equal the inputs only up to a permutation, a scale and a sign per input (the ICA
ambiguities; Kariyappa et al., 2023, Sec. 4). With ``A = V^+`` (m, B) the estimated mixing,
``A = Dz C`` for a diagonal ``C`` when the unmixing is right, so

* ``S = A^+ G = C^{-1} X`` (the uncentred sources: no offset to estimate), and
* ``A c = dL/db`` gives ``c = C^{-1} 1``, hence ``x_j = S_j / c_j``, exactly.

The paper resolves sign and scale with image statistics instead; the bias gradient makes them
exact whenever the unmixing direction is right.
"""

from __future__ import annotations

import torch
from torch import Tensor


def whiten(rows: Tensor, b: int) -> tuple[Tensor, Tensor]:
    """PCA whitening of mixtures (one mixture per row) onto their top ``b`` components.

    Args:
        rows: (m, n) mixtures, one sample per column.
        b: number of sources.

    Returns:
        ``white`` (b, n) with ``white @ white.T / n = I`` and the whitening matrix ``K``
        (b, m) with ``white = K (rows - rows.mean(1))``.
    """
    n = rows.shape[1]
    centred = rows - rows.mean(dim=1, keepdim=True)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    s = s[:b].clamp_min(torch.finfo(rows.dtype).tiny)
    k = (u[:, :b] / s).T * n**0.5
    return k @ centred, k


def inputs_from_unmixing(unmixing: Tensor, weight_grad: Tensor, bias_grad: Tensor) -> Tensor:
    """Inputs ``x_j = S_j / c_j`` from an unmixing of the first layer's gradient.

    Args:
        unmixing: (B, m) map from (centred) mixtures to sources.
        weight_grad: (m, n) weight gradient.
        bias_grad: (m,) bias gradient.

    Returns:
        (B, n) float64 inputs.
    """
    mixing = torch.linalg.pinv(unmixing.to(torch.float64))  # (m, B)
    rhs = torch.cat([weight_grad.to(torch.float64), bias_grad.to(torch.float64)[:, None]], 1)
    sol = torch.linalg.lstsq(mixing, rhs, driver="gelsd").solution  # (B, n + 1)
    c = sol[:, -1:]
    tiny = torch.finfo(torch.float64).tiny
    c = torch.where(c.abs() > tiny, c, torch.full_like(c, tiny))
    return sol[:, :-1] / c


def unmix_with(weight_grad: Tensor, bias_grad: Tensor, unmixing: Tensor) -> Tensor:
    """Inputs from a given (B, B) unmixing of the whitened raw gradient (a control).

    Whitens the rows of ``dL/dW`` (:func:`whiten`), applies ``unmixing`` and rescales with the
    bias gradient like :class:`~gradleak.attacks.analytic.cpa.CocktailParty`. With a random
    orthogonal ``unmixing`` this is the control that ICA must beat.

    Returns:
        (B, n) float64 inputs.
    """
    gw = weight_grad.detach().to(torch.float64).reshape(weight_grad.shape[0], -1)
    _, k = whiten(gw, unmixing.shape[0])
    return inputs_from_unmixing(unmixing.to(torch.float64) @ k, gw, bias_grad.detach())
