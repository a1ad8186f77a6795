"""``GenerativePrior``: a latent -> image network in [0, 1], split into stages, plus metadata.

The attacks of the generative family search the input of such a network: the latent code
(GIAS stage 1, Jeon et al., NeurIPS 2021; GGL, Li et al., CVPR 2022), the generator weights
per image (GIAS stage 2) or an intermediate feature (GIFD, Fang et al., ICCV 2023). For the
last one the network is exposed as ``stem`` -> ``blocks`` -> ``head``:
``features(z, k)`` is the input of ``blocks[k]`` and ``decode_from(h, k)`` finishes the
decoding from there.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gradleak.errors import ConfigError


class GenerativePrior(nn.Module):
    """latent (N, latent_dim) -> images (N, channels, image_size, image_size) in [0, 1].

    A prior is returned in eval mode with its parameters frozen (``requires_grad=False``;
    copy them to fine-tune, as GIAS does per image); every sample decodes independently of
    the others and the network is functional (no in-place ops on inputs, no data-dependent
    control flow), so ``torch.func.functional_call`` with per-sample parameters batches under
    ``torch.func.vmap``.

    Attributes:
        kind: ``"dcgan"``, ``"vae"`` or ``"custom"`` (a wrapped user module).
        latent_dim: size of the latent code.
        image_size: side of the square output images.
        channels: image channels.
        metadata: JSON-serialisable description: kind, latent_dim, image_size, channels,
            value_range [0, 1], data, train settings, the command that made it.
        stem: latent (N, d) -> first feature.
        blocks: upsampling stages, each feature -> feature.
        head: last feature -> image in [0, 1].

    Example:
        >>> import gradleak as gl
        >>> G = gl.generative.load("digits")
        >>> z = G.sample_latent(2, torch.Generator().manual_seed(0))
        >>> x = G(z)
        >>> tuple(x.shape), G.num_stages, bool(torch.equal(G.decode_from(G.features(z, 2), 2), x))
        ((2, 1, 32, 32), 4, True)
    """

    kind: str
    latent_dim: int
    image_size: int
    channels: int
    metadata: dict[str, Any]
    stem: nn.Module
    blocks: nn.ModuleList
    head: nn.Module

    def __init__(
        self,
        stem: nn.Module,
        blocks: nn.ModuleList,
        head: nn.Module,
        *,
        kind: str,
        latent_dim: int,
        image_size: int,
        channels: int,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = blocks
        self.head = head
        self.kind = kind
        self.latent_dim = int(latent_dim)
        self.image_size = int(image_size)
        self.channels = int(channels)
        meta = dict(metadata or {})
        meta.update(
            kind=kind,
            latent_dim=self.latent_dim,
            image_size=self.image_size,
            channels=self.channels,
            value_range=[0.0, 1.0],
        )
        self.metadata = meta
        self.eval()
        self.requires_grad_(False)

    # ---------------------------------------------------------------------------- decoding
    def forward(self, z: Tensor) -> Tensor:
        """Decodes latents (N, latent_dim) into images (N, C, S, S) in [0, 1]."""
        return self.decode_from(self.features(z, 0), 0)

    @property
    def num_stages(self) -> int:
        """``len(blocks) + 1``: the valid ``k`` of :meth:`features` are ``0 .. len(blocks)``."""
        return len(self.blocks) + 1

    def _check_stage(self, k: int) -> None:
        if not 0 <= k <= len(self.blocks):
            raise ConfigError(
                f"stage k={k} is out of range for a prior with {len(self.blocks)} blocks; "
                f"use 0 <= k <= {len(self.blocks)} (num_stages = {self.num_stages})"
            )

    def features(self, z: Tensor, k: int) -> Tensor:
        """The input of ``blocks[k]`` for latents ``z`` (k = 0: ``stem(z)``; k = len(blocks):
        the head's input)."""
        self._check_stage(k)
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ConfigError(
                f"latents must have shape (N, {self.latent_dim}); got {tuple(z.shape)}"
            )
        h = self.stem(z)
        for block in self.blocks[:k]:
            h = block(h)
        return h

    def decode_from(self, h: Tensor, k: int) -> Tensor:
        """Runs ``blocks[k:]`` and the head on the stage-``k`` feature ``h``."""
        self._check_stage(k)
        for block in self.blocks[k:]:
            h = block(h)
        return self.head(h)

    def sample_latent(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` latents drawn from N(0, I) with ``generator`` (on the prior's device)."""
        p = next(self.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
        dtype = p.dtype if p is not None else torch.float32
        z = torch.randn(n, self.latent_dim, generator=generator, device=generator.device)
        return z.to(device=device, dtype=dtype)

    # ---------------------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        """Writes one safetensors file: weights + JSON metadata in its header.

        See :func:`gradleak.generative.save` for the format.
        """
        from gradleak.generative.io import save

        return save(self, path)

    def extra_repr(self) -> str:
        return (
            f"kind={self.kind!r}, latent_dim={self.latent_dim}, image_size={self.image_size}, "
            f"channels={self.channels}"
        )


def wrap(
    module: nn.Module,
    *,
    latent_dim: int,
    image_size: int,
    channels: int,
    name: str = "custom",
    metadata: dict[str, Any] | None = None,
) -> GenerativePrior:
    """Wraps any user latent -> image module as a :class:`GenerativePrior`.

    A module with ``stem``, ``blocks`` (a ``ModuleList``) and ``head`` attributes keeps its
    stages; any other module is one stage (``features(z, 0) = z``, ``decode_from = module``).
    The module is deep-copied (the caller's object is never changed), put in eval mode and
    checked on two random latents: output shape ``(N, channels, image_size, image_size)``,
    finite values in [0, 1] (end it with a sigmoid), and samples decoding independently.

    Args:
        module: maps (N, latent_dim) latents to (N, channels, image_size, image_size) images.
        latent_dim: size of the latent.
        image_size: side of the output images.
        channels: channels of the output images.
        name: a description stored in the metadata (``kind`` is ``"custom"``).
        metadata: extra JSON-serialisable metadata.

    Raises:
        ConfigError: when the module does not produce valid images.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 64), nn.Unflatten(1, (1, 8, 8)), nn.Sigmoid())
        >>> G = wrap(net, latent_dim=4, image_size=8, channels=1)
        >>> tuple(G(torch.zeros(3, 4)).shape), G.num_stages
        ((3, 1, 8, 8), 1)
    """
    net = copy.deepcopy(module)
    staged = all(hasattr(net, a) for a in ("stem", "blocks", "head")) and isinstance(
        getattr(net, "blocks", None), nn.ModuleList
    )
    stem = getattr(net, "stem") if staged else nn.Identity()  # noqa: B009
    blocks = getattr(net, "blocks") if staged else nn.ModuleList()  # noqa: B009
    head = getattr(net, "head") if staged else net  # noqa: B009
    meta = {"name": name, **(metadata or {})}
    prior = GenerativePrior(
        stem, blocks, head, kind="custom", latent_dim=latent_dim, image_size=image_size,
        channels=channels, metadata=meta,
    )
    check_outputs(prior)
    return prior


def check_outputs(prior: GenerativePrior) -> None:
    """Decodes two fixed random latents and checks shape, range and per-sample independence.

    Raises:
        ConfigError: the network does not map latents to independent images in [0, 1].
    """
    z = torch.randn(2, prior.latent_dim, generator=torch.Generator().manual_seed(0))
    p = next(prior.parameters(), None)
    if p is not None:
        z = z.to(device=p.device, dtype=p.dtype)
    want = (prior.channels, prior.image_size, prior.image_size)
    try:
        with torch.no_grad():
            x = prior(z)
            x0 = prior(z[:1])
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"the generator fails on latents of shape (2, {prior.latent_dim}): {exc}; check "
            "latent_dim and the module's first layer"
        ) from exc
    if tuple(x.shape) != (2, *want):
        raise ConfigError(
            f"the generator maps (2, {prior.latent_dim}) latents to {tuple(x.shape)}, not "
            f"(2, {', '.join(map(str, want))}); fix latent_dim/image_size/channels"
        )
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise ConfigError(
            "the generator's images are not finite values in [0, 1]; end the module with a "
            "sigmoid (or (tanh + 1) / 2)"
        )
    if not torch.allclose(x[:1], x0, atol=1e-5, rtol=1e-4):
        raise ConfigError(
            "the generator decodes a sample differently inside a batch (batch-statistics "
            "norm?); put batch norm in eval mode or use a per-sample norm"
        )
