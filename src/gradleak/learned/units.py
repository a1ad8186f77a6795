"""The batch-aware gradient-shaped head ``units``: one shared decoder per labelled output unit.

For a softmax classifier whose last layer is ``z = W h + b`` (cross-entropy, mean over a batch
of B images), row c of the weight gradient and entry c of the bias gradient are

    dL/dW_c = (1/B) sum_i g_ic h_i,    dL/db_c = (1/B) sum_i g_ic,    g_ic = p_ic - [y_i = c],

with p_i the softmax output and h_i the layer input of image i (the observation behind the
bias attack, Phong et al., 2017, and the label strategies iDLG / iLRG). For a label c held by
n_c images the row mixes those images' features (coefficient -1 + p_ic) with every image's
features weighted by p_ic; the rows of absent classes hold only the p-weighted part. So

    m = sum_{c': dL/db_c' > 0} dL/dW_c' / sum_{c': dL/db_c' > 0} dL/db_c'

is a p-weighted mean feature, and ``((B db_c + n_c) m - B dW_c) / n_c`` estimates the mean
feature of the images labelled c (exact when the p-weights do not depend on the image; on
DLG's untrained sigmoid LeNet the softmax is nearly one-hot on one class and the estimate is
within 1e-4 relative error for the other labels).

The head reads only the last ``nn.Linear`` layer. For each of the B labels (shared by the
client, recovered by a label strategy such as iLRG, or the true labels while training) it
builds one input from the selected row: the feature estimate above, the row itself in the
canonical form of :func:`~gradleak.learned.heads.canonical_rows` (with its bias entry), and
one-hot codes of the label, of the image's rank among the images sharing its label and of
that count; one decoder (the Learning to Invert MLP, Wu et al., UAI 2023) shared by all rows
maps it to an image. Its size does not grow with B or with the model below the last layer,
and its B outputs come in the order of the labels it is given. With ``context > 0``
(:class:`~gradleak.learned.heads.HeadSettings`) every row's input also holds an encoding of
the whole (hashed, standardised) update, as the paper's MLP reads it: for defenses that
erase the last layer's information (sign compression: the layer input of DLG's LeNet is a
sigmoid output, so every row's signs are constant). Two images with the same label
share one row (their features' sum), which the last layer cannot separate: the decoder sees
their count and rank and does what it can.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from gradleak.errors import ConfigError, ObservationError
from gradleak.learned.heads import (
    HEADS,
    HeadSettings,
    InverterHead,
    Layout,
    canonical_rows,
    flat_update,
    mlp,
    standardise_stats,
    update_hash,
)

__all__ = ["UnitsHead", "label_ranks", "unit_features"]


def label_ranks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """For (N, B) labels: each entry's rank among equal labels of its row, and their count.

    Example:
        >>> label_ranks(torch.tensor([[3, 1, 3, 3]]))
        (tensor([[0, 0, 1, 2]]), tensor([[3, 1, 3, 3]]))
    """
    eq = labels.unsqueeze(2) == labels.unsqueeze(1)  # (N, B, B)
    before = torch.ones(labels.shape[1], labels.shape[1], dtype=torch.bool).tril(-1)
    return (eq & before).sum(-1), eq.sum(-1)


def unit_features(weight: Tensor, bias: Tensor, labels: Tensor) -> Tensor:
    """The per-label feature estimate of the module docstring.

    Args:
        weight: (N, K, F) last-layer weight gradients (batch means over B images).
        bias: (N, K) bias gradients.
        labels: (N, B) labels; B is taken from their shape.

    Returns:
        (N, B, F): for label b of group n, the estimated mean layer input of its images.
    """
    B = labels.shape[1]
    _, count = label_ranks(labels)
    pos = (bias > 0).to(weight.dtype)
    m = (weight * pos.unsqueeze(-1)).sum(1) / (bias * pos).sum(1, keepdim=True).clamp_min(1e-8)
    rows = weight.gather(1, labels.unsqueeze(-1).expand(-1, -1, weight.shape[-1]))
    db = bias.gather(1, labels)
    n = count.to(weight.dtype)
    est = ((B * db + n).unsqueeze(-1) * m.unsqueeze(1) - B * rows) / n.unsqueeze(-1)
    return torch.nan_to_num(est, nan=0.0, posinf=0.0, neginf=0.0)


class UnitsHead(InverterHead):
    """Per-label rows of the last Linear layer -> one shared decoder -> B images.

    Needs the batch's labels (``head(update, labels)``); see the module docstring.
    """

    needs_labels: ClassVar[bool] = True
    mean: Tensor
    std: Tensor
    context_mean: Tensor
    context_std: Tensor

    def __init__(self, layout: Layout, settings: HeadSettings) -> None:
        super().__init__()
        if not layout.row_params or layout.row_params[-1][1] < 0:
            raise ConfigError(
                "the 'units' head needs a model whose last nn.Linear layer has a bias (its "
                "gradient tells the labels' rows apart); use head='rows' or 'mlp'"
            )
        self.layout = layout
        self.weight_index, self.bias_index = layout.row_params[-1]
        self.classes, *rest = layout.param_shapes[self.weight_index]
        features = math.prod(rest)
        width = 2 * features + 1
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        codes = self.classes + 2 * layout.batch_size
        self.hash = update_hash(layout, settings) if settings.context else None
        flat = (self.hash.out_dim if self.hash is not None else layout.update_size
                ) if settings.context else 0
        self.register_buffer("context_mean", torch.zeros(flat))
        self.register_buffer("context_std", torch.ones(flat))
        self.context = (nn.Sequential(nn.Linear(flat, settings.context), nn.ReLU())
                        if settings.context else None)
        self.net = mlp(width + codes + settings.context, settings.hidden,
                       math.prod(layout.image_shape))

    def _inputs(self, update: Sequence[Tensor], labels: Tensor | None) -> tuple[Tensor, Tensor]:
        B = self.layout.batch_size
        weight = update[self.weight_index].flatten(2)
        bias = update[self.bias_index]
        if labels is None:
            raise ConfigError(
                "the 'units' head needs the batch's labels: pass labels= (shared, or "
                "recovered with gl.recover_labels(obs, strategy='ilrg'))"
            )
        if (labels.shape != (weight.shape[0], B) or labels.dtype.is_floating_point
                or bool((labels < 0).any()) or bool((labels >= self.classes).any())):
            raise ObservationError(
                f"labels must be {B} integer class indices in [0, {self.classes}) per update, "
                f"got shape {tuple(labels.shape)}"
            )
        labels = labels.long()
        rows = torch.cat([weight, bias.unsqueeze(-1)], dim=-1)
        picked = rows.gather(1, labels.unsqueeze(-1).expand(-1, -1, rows.shape[-1]))
        cont = torch.cat([unit_features(weight, bias, labels), canonical_rows(picked)], dim=-1)
        rank, count = label_ranks(labels)
        codes = torch.cat([
            nn.functional.one_hot(labels, self.classes),
            nn.functional.one_hot(rank, B),
            nn.functional.one_hot(count - 1, B),
        ], dim=-1).to(cont.dtype)
        return cont, codes

    def calibrate(self, update: Sequence[Tensor], labels: Tensor | None = None) -> None:
        """Sets the per-column mean and std of the continuous inputs from a batch."""
        cont, _ = self._inputs(update, labels)
        mean, std = standardise_stats(cont.reshape(-1, cont.shape[-1]))
        self.mean.copy_(mean)
        self.std.copy_(std)
        if self.context is not None:
            mean, std = standardise_stats(flat_update(update, self.hash))
            self.context_mean.copy_(mean)
            self.context_std.copy_(std)

    def forward(self, update: Sequence[Tensor], labels: Tensor | None = None) -> Tensor:
        cont, codes = self._inputs(update, labels)
        parts = [(cont - self.mean) / self.std, codes]
        if self.context is not None:
            flat = (flat_update(update, self.hash) - self.context_mean) / self.context_std
            parts.append(self.context(flat).unsqueeze(1).expand(-1, cont.shape[1], -1))
        return self.net(torch.cat(parts, dim=-1)).view(*cont.shape[:2], *self.layout.image_shape)


HEADS.register("units")(UnitsHead)
