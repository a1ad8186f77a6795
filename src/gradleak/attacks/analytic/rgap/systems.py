"""R-GAP: one layer's least-squares system (weight-gradient, forward and padding constraints).

Zhu & Blaschko, ICLR 2021, Sec. 3 (convolutions unrolled to sparse matrices).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradleak.attacks.analytic.rgap.activations import F64
from gradleak.attacks.analytic.rgap.chain import Stage


def conv_patch_indices(
    in_shape: tuple[int, int, int], kernel: tuple[int, int], stride: tuple[int, int],
    padding: tuple[int, int],
) -> tuple[Tensor, int]:
    """im2col index map of an (unpadded) input: (C*kh*kw, P) flat input indices, -1 for padding.

    Returns:
        ``(indices, number of padded entries)``.
    """
    c, h, w = in_shape
    idx = torch.arange(c * h * w, dtype=F64).reshape(1, c, h, w) + 1
    padded = F.pad(idx, (padding[1], padding[1], padding[0], padding[0]))
    cols = F.unfold(padded, kernel_size=kernel, stride=stride)[0].long() - 1
    n_pad = padded.numel() - idx.numel()
    return cols, n_pad


def _coo(rows: Tensor, cols: Tensor, vals: Tensor, shape: tuple[int, int]) -> sp.csr_matrix:
    keep = cols >= 0
    return sp.csr_matrix(
        (vals[keep].numpy(), (rows[keep].numpy(), cols[keep].numpy())), shape=shape
    )


@dataclass
class LayerSystem:
    """A layer's least-squares system ``A x = b`` in blocks, plus bookkeeping for the report.

    ``rank_one = (k, G)`` holds a linear layer's gradient constraints ``G = k x^T`` implicitly.
    """

    blocks: list[tuple[sp.csr_matrix, np.ndarray]]
    unknowns: int
    gradient_constraints: int
    forward_constraints: int
    padding: int
    rank_one: tuple[np.ndarray, np.ndarray] | None = None


def conv_system(
    stage: Stage, k: Tensor, g_weight: Tensor, z: Tensor | None, known: Tensor | None
) -> LayerSystem:
    """Gradient + forward constraints of a convolution on its unpadded input (float64)."""
    layer = stage.layer
    assert isinstance(layer, nn.Conv2d)
    weight = layer.weight.detach().to(F64)
    f_out = weight.shape[0]
    kernel = (int(weight.shape[2]), int(weight.shape[3]))
    cols, n_pad = conv_patch_indices(
        stage.in_shape, kernel, tuple(layer.stride), tuple(layer.padding)  # type: ignore[arg-type]
    )
    ckk, n_pos = cols.shape
    n = math.prod(stage.in_shape)
    kf = k.reshape(f_out, n_pos)
    # gradient: dL/dW[f, ckk] = sum_p k[f, p] x[cols[ckk, p]]
    g_rows = (torch.arange(f_out)[:, None, None] * ckk + torch.arange(ckk)[None, :, None])
    g_rows = g_rows.expand(f_out, ckk, n_pos)
    g_cols = cols[None].expand(f_out, ckk, n_pos)
    g_vals = kf[:, None, :].expand(f_out, ckk, n_pos)
    a_grad = _coo(g_rows.reshape(-1), g_cols.reshape(-1), g_vals.reshape(-1), (f_out * ckk, n))
    blocks = [(a_grad, g_weight.to(F64).reshape(-1).numpy())]
    n_fwd = 0
    if z is not None and known is not None:
        # forward: z[f, p] - b[f] = sum_ckk W[f, ckk] x[cols[ckk, p]], on rows with known z
        w2 = weight.reshape(f_out, ckk)
        f_rows = torch.arange(f_out * n_pos).reshape(f_out, 1, n_pos).expand(f_out, ckk, n_pos)
        f_cols = cols[None].expand(f_out, ckk, n_pos)
        f_vals = w2[:, :, None].expand(f_out, ckk, n_pos)
        a_fwd = _coo(f_rows.reshape(-1), f_cols.reshape(-1), f_vals.reshape(-1),
                     (f_out * n_pos, n))
        rhs = z.reshape(f_out, n_pos).clone()
        if layer.bias is not None:
            rhs = rhs - layer.bias.detach().to(F64)[:, None]
        mask = known.reshape(-1).numpy()
        a_fwd = a_fwd[mask]
        n_fwd = int(mask.sum())
        blocks.append((a_fwd, rhs.reshape(-1).numpy()[mask]))
    return LayerSystem(blocks, n, f_out * ckk, n_fwd, n_pad)


def linear_system(
    stage: Stage, k: Tensor, g_weight: Tensor, z: Tensor | None, known: Tensor | None
) -> LayerSystem:
    """Gradient constraints ``dL/dW = k x^T`` (+ forward ``W x = z - b``) of a linear layer.

    The gradient block ``k (x) I`` is kept implicit (``rank_one``); :func:`solve_linear`
    solves it in closed form.
    """
    layer = stage.layer
    assert isinstance(layer, nn.Linear)
    n, out = layer.in_features, layer.out_features
    blocks: list[tuple[sp.csr_matrix, np.ndarray]] = []
    n_fwd = 0
    if z is not None and known is not None:
        mask = known.reshape(-1).numpy()
        rhs = z.reshape(-1).clone()
        if layer.bias is not None:
            rhs = rhs - layer.bias.detach().to(F64)
        w = layer.weight.detach().to(F64).numpy()[mask]
        blocks.append((sp.csr_matrix(w), rhs.numpy()[mask]))
        n_fwd = int(mask.sum())
    rank_one = (k.reshape(-1).numpy(), g_weight.to(F64).reshape(out, n).numpy())
    return LayerSystem(blocks, n, out * n, n_fwd, 0, rank_one)


# Layer type -> builder of its least-squares system.
SYSTEMS: dict[type[nn.Module], Callable[..., LayerSystem]] = {
    nn.Conv2d: conv_system,
    nn.Linear: linear_system,
}
