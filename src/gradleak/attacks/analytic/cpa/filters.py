"""Innovation filters: fixed linear filters over the pixel axis, applied before the ICA.

The first layer's weight gradient is ``dL/dW = Dz X``: every row is a mixture of the ``B``
private inputs with the *same* coefficients at every pixel. Any fixed linear map ``F`` over
the pixel axis therefore commutes with the mixing, ``(Dz X) F = Dz (X F)``: the filtered rows
are the same mixture of the filtered images. Natural images are strongly correlated with each
other (shared smooth gradients, similar colour statistics), which breaks ICA's independence
assumption; their finite differences ("innovations", edges) are much sparser, closer to
independent and further from Gaussian (Hyvärinen, Hurri & Hoyer, *Natural Image
Statistics*, 2009, Ch. 7; Hyvärinen, "Independent component analysis for time-dependent
stochastic processes", 1998, on ICA of innovations). Estimating the unmixing on filtered rows
and applying it to the unfiltered rows is the standard remedy; the unmixing does not change
with the filter when the sources are exactly separable.

Every filter maps images ``(m, C, H, W)`` to rows ``(m, n')``; ``"none"`` is the identity
(the paper's ICA on raw pixels).

Example:
    >>> rows = torch.arange(8.0).reshape(1, 1, 2, 4)
    >>> FILTERS.get("dx")(rows)
    tensor([[1., 1., 1., 1., 1., 1.]])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from gradleak.registry import Registry

Filter = Callable[[Tensor], Tensor]

#: innovation filters by name (``cpa``'s ``filter`` option).
FILTERS: Registry[Filter] = Registry("cpa innovation filter")


@FILTERS.register("none")
def identity(images: Tensor) -> Tensor:
    """The raw pixels (the paper's ICA)."""
    return images.reshape(images.shape[0], -1)


@FILTERS.register("dx")
def horizontal_difference(images: Tensor) -> Tensor:
    """Differences of horizontally adjacent pixels, per channel."""
    return (images[..., :, 1:] - images[..., :, :-1]).reshape(images.shape[0], -1)


@FILTERS.register("gradient")
def image_gradient(images: Tensor) -> Tensor:
    """Horizontal and vertical differences as one longer row (twice the samples of ``dx``)."""
    dy = (images[..., 1:, :] - images[..., :-1, :]).reshape(images.shape[0], -1)
    return torch.cat([horizontal_difference(images), dy], dim=1)


@FILTERS.register("laplacian")
def laplacian(images: Tensor) -> Tensor:
    """The 5-point discrete Laplacian, per channel (valid part only)."""
    c = images.shape[1]
    kernel = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]],
                          dtype=images.dtype, device=images.device)
    out = F.conv2d(images, kernel.expand(c, 1, 3, 3), groups=c)
    return out.reshape(images.shape[0], -1)


def filter_rows(rows: Tensor, shape: tuple[int, ...], name: str) -> Tensor:
    """Applies the filter ``name`` to every row of ``rows`` seen as an image of ``shape``.

    Args:
        rows: (m, prod(shape)) gradient rows.
        shape: (C, H, W) of one input.
        name: a key of :data:`FILTERS`.

    Returns:
        (m, n') filtered rows (``n' = prod(shape)`` for ``"none"``).
    """
    return FILTERS.get(name)(rows.reshape(rows.shape[0], *shape))
