"""The inverter networks: the paper's MLP on the hashed gradient and gradient-shaped heads.

All map a batch of updates (one tensor per trainable parameter, each (N, *shape)) to
(N, B, C, H, W) images in [0, 1] through a sigmoid, as Learning to Invert does.

* ``mlp`` (Wu, Chen, Guo & Weinberger, "Learning to Invert", UAI 2023, Sec. 4): the whole
  flat update, feature-hashed to ``hash_dim`` entries when it is longer (see
  :mod:`.hashing`), standardised per feature with statistics of the first training pairs, then
  Linear-ReLU-Linear-ReLU-Linear (hidden width 3000 for B = 1 and 10000 for B = 4 in the
  paper) and a sigmoid. Its input grows with the whole model.
* ``rows``: reads only the gradients of the model's last ``row_layers`` Linear layers, one
  row per output unit. For one image, row j of dL/dW is ``dL/dz_j`` times the layer input
  (the observation behind the bias attack, Phong et al., 2017, and R-GAP), so every row is a
  scaled copy of the same feature vector. Each row (with its bias entry) is put in a
  canonical form (norm sqrt(F), sign making its sum positive), standardised per column with
  statistics of the first training pairs, encoded by a small Linear-ReLU shared by the rows
  of its layer, and the encodings of all rows feed the same three-layer
  MLP. Its input grows with the last layers only, not with the whole model.

* ``units`` (:mod:`.units`): batch-aware; one decoder shared by the rows of the batch's
  labels, so it needs the labels (shared or recovered).

Heads are registered in :data:`HEADS`; an inverter records its head's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from gradleak.errors import ConfigError
from gradleak.learned.hashing import FeatureHash
from gradleak.registry import Registry

__all__ = ["HEADS", "HeadSettings", "InverterHead", "Layout", "MLPHead", "RowsHead", "build_head",
           "canonical_rows", "flat_update", "mlp", "standardise_stats", "update_hash"]


@dataclass(frozen=True)
class Layout:
    """What a head reads and writes, taken from the target model.

    Attributes:
        param_shapes: the shape of every trainable parameter, in ``named_parameters`` order.
        row_params: per Linear layer the head ``rows`` reads (last ones last): the index of
            its weight in ``param_shapes`` and of its bias (or -1 without bias).
        image_shape: (C, H, W) of one image.
        batch_size: images B behind one update.
    """

    param_shapes: tuple[tuple[int, ...], ...]
    row_params: tuple[tuple[int, int], ...]
    image_shape: tuple[int, int, int]
    batch_size: int

    @property
    def update_size(self) -> int:
        """Entries of one flat update."""
        return sum(math.prod(s) for s in self.param_shapes)

    @property
    def output_size(self) -> int:
        """Entries of B images."""
        return self.batch_size * math.prod(self.image_shape)


@dataclass(frozen=True)
class HeadSettings:
    """Sizes of a head (recorded in the checkpoint).

    Attributes:
        hidden: width of the two hidden layers of the MLP.
        hash_dim: buckets of the feature hash (``mlp``); None or >= the update size uses the
            whole update unhashed.
        signed_hash: count-sketch signs in the hash.
        hash_seed: seed of the bucket map.
        row_width: width of the per-row encoder (``rows``).
        context: width of the encoding of the whole (hashed, standardised) update that the
            ``units`` head adds to every row's input (0: none, the last layer only).
    """

    hidden: int = 1000
    hash_dim: int | None = None
    signed_hash: bool = True
    hash_seed: int = 0
    row_width: int = 64
    context: int = 0


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """The paper's Linear-ReLU-Linear-ReLU-Linear network with a sigmoid output."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, out_dim), nn.Sigmoid(),
    )


class InverterHead(nn.Module):
    """Base of the heads: ``head(update, labels)`` -> (N, B, C, H, W) images in [0, 1].

    ``update`` is one tensor per trainable parameter, each (N, *shape); ``labels`` (N, B) are
    the batch's labels, used only by heads with ``needs_labels`` (the others ignore them).
    :meth:`calibrate` sets input statistics from a first batch of training updates.
    """

    needs_labels: ClassVar[bool] = False

    def calibrate(self, update: Sequence[Tensor], labels: Tensor | None = None) -> None:
        """Sets the head's input statistics from a batch of updates."""
        raise NotImplementedError


def standardise_stats(flat: Tensor) -> tuple[Tensor, Tensor]:
    """Per-column mean and std (floored at 1e-3 of the mean std) of (n, d) samples."""
    flat = flat.double()
    std = flat.std(0) if flat.shape[0] > 1 else torch.ones_like(flat[0])
    floor = 1e-3 * float(std.mean()) + 1e-12
    return flat.mean(0).float(), std.clamp_min(floor).float()


def update_hash(layout: Layout, settings: HeadSettings) -> FeatureHash | None:
    """The feature hash of the whole flat update, or None when ``hash_dim`` does not shrink it."""
    d, k = layout.update_size, settings.hash_dim
    return (FeatureHash(d, k, signed=settings.signed_hash, seed=settings.hash_seed)
            if k is not None and k < d else None)


def flat_update(update: Sequence[Tensor], hashing: FeatureHash | None) -> Tensor:
    """The (N, width) flat update, feature-hashed when ``hashing`` is given."""
    flat = torch.cat([u.reshape(u.shape[0], -1) for u in update], dim=1)
    return hashing(flat) if hashing is not None else flat


class MLPHead(InverterHead):
    """Learning to Invert's inverter: hashed flat update -> MLP -> images."""

    mean: Tensor
    std: Tensor

    def __init__(self, layout: Layout, settings: HeadSettings) -> None:
        super().__init__()
        self.layout = layout
        self.hash = update_hash(layout, settings)
        width = self.hash.out_dim if self.hash is not None else layout.update_size
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        self.net = mlp(width, settings.hidden, layout.output_size)

    def features(self, update: Sequence[Tensor]) -> Tensor:
        """The flat (hashed) update, (N, width), before standardisation."""
        return flat_update(update, self.hash)

    def calibrate(self, update: Sequence[Tensor], labels: Tensor | None = None) -> None:
        """Sets the per-feature mean and standard deviation from a batch of updates."""
        mean, std = standardise_stats(self.features(update))
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, update: Sequence[Tensor], labels: Tensor | None = None) -> Tensor:
        f = (self.features(update) - self.mean) / self.std
        return self.net(f).view(f.shape[0], self.layout.batch_size, *self.layout.image_shape)


def canonical_rows(rows: Tensor) -> Tensor:
    """Rows (..., F) scaled to norm sqrt(F), signed so that each row's sum is >= 0."""
    s = torch.sign(rows.sum(-1, keepdim=True))
    s = torch.where(s == 0, torch.ones_like(s), s)
    norm = rows.norm(dim=-1, keepdim=True)
    return rows * s * (math.sqrt(rows.shape[-1]) / (norm + 1e-12))


class RowsHead(InverterHead):
    """The gradient-shaped head: per-output-unit rows of the last Linear layers -> images."""

    def __init__(self, layout: Layout, settings: HeadSettings) -> None:
        super().__init__()
        if not layout.row_params:
            raise ConfigError(
                "the 'rows' head needs a model with at least one nn.Linear layer; use "
                "head='mlp'"
            )
        self.layout = layout
        encoders = []
        total = 0
        for w, b in layout.row_params:
            out_units, *rest = layout.param_shapes[w]
            width = math.prod(rest) + (1 if b >= 0 else 0)
            encoders.append(nn.Sequential(nn.Linear(width, settings.row_width), nn.ReLU()))
            self.register_buffer(f"mean{len(encoders) - 1}", torch.zeros(width))
            self.register_buffer(f"std{len(encoders) - 1}", torch.ones(width))
            total += out_units * settings.row_width
        self.encoders = nn.ModuleList(encoders)
        self.net = mlp(total, settings.hidden, layout.output_size)

    def _rows(self, update: Sequence[Tensor]) -> list[Tensor]:
        out = []
        for w, b in self.layout.row_params:
            rows = update[w].flatten(2)  # (N, K, F)
            if b >= 0:
                rows = torch.cat([rows, update[b].unsqueeze(-1)], dim=-1)
            out.append(canonical_rows(rows))
        return out

    def calibrate(self, update: Sequence[Tensor], labels: Tensor | None = None) -> None:
        """Sets each layer's per-column mean and std of the canonical rows from a batch."""
        for i, rows in enumerate(self._rows(update)):
            mean, std = standardise_stats(rows.reshape(-1, rows.shape[-1]))
            getattr(self, f"mean{i}").copy_(mean)
            getattr(self, f"std{i}").copy_(std)

    def forward(self, update: Sequence[Tensor], labels: Tensor | None = None) -> Tensor:
        parts = []
        for i, (rows, enc) in enumerate(zip(self._rows(update), self.encoders, strict=True)):
            z = (rows - getattr(self, f"mean{i}")) / getattr(self, f"std{i}")
            parts.append(enc(z).flatten(1))
        h = torch.cat(parts, dim=1)
        return self.net(h).view(h.shape[0], self.layout.batch_size, *self.layout.image_shape)


Head = InverterHead
HEADS: Registry[Callable[[Layout, HeadSettings], Head]] = Registry("inverter head")
HEADS.register("mlp")(MLPHead)
HEADS.register("rows")(RowsHead)


def build_head(name: str, layout: Layout, settings: HeadSettings) -> Head:
    """Builds the registered head ``name`` for ``layout``."""
    return HEADS.get(name)(layout, settings)
