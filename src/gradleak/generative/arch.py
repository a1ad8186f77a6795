"""The generator network of the shipped prior kinds: a small DCGAN-style upsampling decoder.

A latent ``z`` (N, d) goes through a *stem* (linear layer to a ``width`` x 4 x 4 feature), one
*block* per doubling of the side (nearest upsampling, 3x3 convolution, norm, ReLU; channels
halve each block down to 16) and a *head* (3x3 convolution to the image channels, then
sigmoid or ``(tanh + 1) / 2``). The layout follows the DCGAN generator of Radford et al.
(ICLR 2016) with resize-convolutions instead of transposed convolutions (Odena et al.,
Distill 2016, no checkerboard artefacts).

Batch normalisation is used only while training; :func:`fold_batchnorm` then folds each norm
into the layer before it, so the inference network holds only linear layers, convolutions and
element-wise activations: every sample decodes independently, and per-sample weight copies
batch under ``torch.func.vmap``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradleak.errors import ConfigError

#: side of the stem's feature map
BASE_SIZE = 4
#: the fewest channels a block keeps
MIN_CHANNELS = 16
#: accepted ranges of the architecture fields (also enforced on files read from disk)
LIMITS = {
    "latent_dim": (1, 1024),
    "image_size": (4, 512),
    "width": (8, 1024),
    "channels": (1, 4),
}
#: most parameters a prior may hold (files above it are refused)
MAX_PARAMETERS = 50_000_000


class Rescale01(nn.Module):
    """``(tanh(x) + 1) / 2``: the DCGAN tanh output mapped to [0, 1]."""

    def forward(self, x: Tensor) -> Tensor:
        return (torch.tanh(x) + 1.0) * 0.5


#: the head's output activation, by name
HEADS: dict[str, type[nn.Module]] = {"sigmoid": nn.Sigmoid, "tanh": Rescale01}


@dataclass(frozen=True)
class GeneratorSpec:
    """What the generator looks like (saved in a prior's metadata, rebuilt on load).

    Attributes:
        latent_dim: size of the latent code.
        image_size: side of the square output (4 x a power of two).
        channels: image channels (1 grey, 3 RGB).
        width: channels of the stem's 4x4 feature; each block halves them (down to 16).
        head: ``"sigmoid"`` or ``"tanh"`` (as ``(tanh + 1) / 2``).
        norm: ``"batch"`` (batch norm, training only) or ``"none"`` (folded / inference).
    """

    latent_dim: int
    image_size: int
    channels: int
    width: int = 128
    head: str = "sigmoid"
    norm: str = "none"

    def __post_init__(self) -> None:
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ConfigError(f"{name} must be an integer in [{lo}, {hi}]; got {value!r}")
        blocks = math.log2(self.image_size / BASE_SIZE)
        if blocks != int(blocks):
            raise ConfigError(
                f"image_size must be {BASE_SIZE} x a power of two (8, 16, 32, 64, ...); "
                f"got {self.image_size}. Resize the images, or wrap your own generator with "
                "gradleak.generative.wrap"
            )
        if self.head not in HEADS:
            raise ConfigError(f"head must be one of {sorted(HEADS)}; got {self.head!r}")
        if self.norm not in ("batch", "none"):
            raise ConfigError(f"norm must be 'batch' or 'none'; got {self.norm!r}")

    @property
    def num_blocks(self) -> int:
        """Upsampling blocks between the 4x4 stem and the output side."""
        return int(math.log2(self.image_size // BASE_SIZE))

    def stage_channels(self) -> list[int]:
        """Channels of the stem's feature and of every block's output."""
        return [max(self.width >> i, MIN_CHANNELS) for i in range(self.num_blocks + 1)]


def _norm(spec: GeneratorSpec, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if spec.norm == "batch" else nn.Identity()


def build(spec: GeneratorSpec) -> tuple[nn.Module, nn.ModuleList, nn.Module]:
    """Builds ``(stem, blocks, head)`` for ``spec`` (parameters freshly initialised).

    Example:
        >>> stem, blocks, head = build(GeneratorSpec(latent_dim=8, image_size=16, channels=1))
        >>> len(blocks), tuple(stem(torch.zeros(2, 8)).shape)
        (2, (2, 128, 4, 4))
    """
    ch = spec.stage_channels()
    stem = nn.Sequential(
        nn.Linear(spec.latent_dim, ch[0] * BASE_SIZE * BASE_SIZE),
        nn.Unflatten(1, (ch[0], BASE_SIZE, BASE_SIZE)),
        _norm(spec, ch[0]),
        nn.ReLU(),
    )
    blocks = nn.ModuleList(
        nn.Sequential(
            nn.Upsample(scale_factor=2.0, mode="nearest"),
            nn.Conv2d(ch[i], ch[i + 1], 3, padding=1),
            _norm(spec, ch[i + 1]),
            nn.ReLU(),
        )
        for i in range(spec.num_blocks)
    )
    head = nn.Sequential(nn.Conv2d(ch[-1], spec.channels, 3, padding=1), HEADS[spec.head]())
    return stem, blocks, head


def _fold_into(layer: nn.Module, bn: nn.BatchNorm2d, repeat: int) -> None:
    """Folds eval-mode ``bn`` into the linear/conv ``layer`` that feeds it (in place)."""
    assert bn.running_mean is not None and bn.running_var is not None
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias.detach() - bn.running_mean * scale
    scale, shift = scale.repeat_interleave(repeat), shift.repeat_interleave(repeat)
    weight = layer.weight
    assert isinstance(weight, Tensor) and isinstance(layer.bias, Tensor)
    with torch.no_grad():
        weight.mul_(scale.view(-1, *([1] * (weight.dim() - 1))))
        layer.bias.mul_(scale).add_(shift)


def fold_batchnorm(stem: nn.Module, blocks: nn.ModuleList) -> None:
    """Replaces every batch norm of ``stem``/``blocks`` (from :func:`build`) by its folded form.

    Each ``BatchNorm2d`` (its running statistics, as in eval mode) is folded into the linear
    layer or convolution before it and replaced by ``nn.Identity``, so the network computes
    the same function in eval mode without any norm layer.
    """
    for seq, repeat in [(stem, BASE_SIZE * BASE_SIZE)] + [(b, 1) for b in blocks]:
        assert isinstance(seq, nn.Sequential)
        layer = seq[0] if repeat > 1 else seq[1]
        if isinstance(seq[2], nn.BatchNorm2d):
            _fold_into(layer, seq[2], repeat)
            seq[2] = nn.Identity()
