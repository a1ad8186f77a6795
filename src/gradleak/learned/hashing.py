"""Feature hashing of a flat gradient: a fixed random bucket map, optionally signed.

Learning to Invert (Wu, Chen, Guo & Weinberger, UAI 2023, Sec. 4) compresses the gradient of
a large model before its MLP by summing the entries that a fixed random map sends to the same
bucket (their ``hashed_matrix``, a sparse d x k 0/1 matrix). The *signed* variant is the
count-sketch of Charikar, Chen & Farach-Colton (2002) / the hashing trick of Weinberger et
al. (ICML 2009): each entry is also multiplied by a random sign, which makes the sketch an
unbiased estimator of inner products, ``E[<S a, S b>] = <a, b>``.

With bucket map ``h: [d] -> [k]`` and signs ``s: [d] -> {-1, +1}`` (all ones when unsigned)

    sketch(g)_j = sum_{i : h(i) = j} s(i) g_i .

The map is applied with ``index_add`` (O(d) work and memory per vector); the dense d x k
matrix is never formed.

Example:
    >>> import torch
    >>> fh = FeatureHash(6, 3, signed=True, seed=0)
    >>> fh(torch.ones(2, 6)).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradleak.errors import ConfigError, DataError

__all__ = ["FeatureHash"]


class FeatureHash(nn.Module):
    """A fixed random map from ``in_dim`` gradient entries to ``out_dim`` buckets.

    Args:
        in_dim: length d of the flat input vectors.
        out_dim: number of buckets k.
        signed: multiply each entry by a fixed random sign (count-sketch); False gives the
            paper's unsigned bucket sums.
        seed: seed of the bucket map and signs (drawn on the CPU with their own generator).

    The map is stored as buffers ``index`` (d,) int64 and ``sign`` (d,) so it is saved and
    restored with the inverter's weights.
    """

    index: Tensor
    sign: Tensor

    def __init__(self, in_dim: int, out_dim: int, *, signed: bool = True, seed: int = 0) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1:
            raise ConfigError(f"feature hashing needs positive sizes, got {in_dim} -> {out_dim}")
        gen = torch.Generator().manual_seed(seed)
        index = torch.randint(0, out_dim, (in_dim,), generator=gen)
        if signed:
            sign = torch.randint(0, 2, (in_dim,), generator=gen).float().mul_(2).sub_(1)
        else:
            sign = torch.ones(in_dim)
        self.in_dim, self.out_dim, self.signed = in_dim, out_dim, signed
        self.register_buffer("index", index)
        self.register_buffer("sign", sign)

    def forward(self, g: Tensor) -> Tensor:
        """Hashes ``g`` (..., d) to (..., k)."""
        if g.shape[-1] != self.in_dim:
            raise ConfigError(
                f"feature hashing expects vectors of length {self.in_dim}, got {g.shape[-1]}"
            )
        lead = g.shape[:-1]
        flat = g.reshape(-1, self.in_dim) * self.sign.to(g.dtype)
        out = flat.new_zeros(flat.shape[0], self.out_dim)
        out.index_add_(1, self.index, flat)
        return out.reshape(*lead, self.out_dim)

    def validate(self) -> None:
        """Checks loaded buffers: indices in range and signs in {-1, +1}.

        Raises:
            DataError: the map is corrupt (e.g. a tampered checkpoint).
        """
        ok = (
            self.index.shape == (self.in_dim,)
            and self.sign.shape == (self.in_dim,)
            and not self.index.dtype.is_floating_point
            and (self.index.numel() == 0
                 or (int(self.index.min()) >= 0 and int(self.index.max()) < self.out_dim))
            and bool(((self.sign == 1) | (self.sign == -1)).all())
        )
        if not ok:
            raise DataError("the checkpoint's feature-hashing map is corrupt; retrain the inverter")

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, signed={self.signed}"
