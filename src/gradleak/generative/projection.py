"""How well a prior can represent given images: latent projection by gradient descent.

For each image, search the latent whose decoding is closest in MSE (Adam on ``z`` from several
random starts, best start kept), as in the GAN-inversion step of GIAS (Jeon et al., NeurIPS
2021) but against the image itself instead of a gradient. The PSNR of the projection bounds
what a latent-space attack can reach with this prior: an image outside the generator's range
cannot be rebuilt from its latent alone. This measures a prior, it never attacks anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.errors import ConfigError
from gradleak.generative.prior import GenerativePrior
from gradleak.metrics import psnr


@dataclass(frozen=True)
class Projection:
    """The result of :func:`project`.

    Attributes:
        latents: the best latent per image (N, latent_dim).
        images: their decodings (N, C, S, S).
        psnr: PSNR of each decoding against its target image, dB (N,).
    """

    latents: Tensor
    images: Tensor
    psnr: Tensor


def project(
    prior: GenerativePrior,
    images: Tensor,
    *,
    steps: int = 300,
    starts: int = 4,
    lr: float = 0.05,
    seed: int = 0,
) -> Projection:
    """Projects ``images`` onto the range of ``prior`` (min MSE over the latent).

    All starts of all images are optimised as one batch (each latent row only affects its own
    image, so Adam treats them independently); the learning rate decays with a cosine schedule.

    Args:
        prior: the generator.
        images: (N, C, S, S) targets in [0, 1] matching the prior's channels and size.
        steps: Adam steps.
        starts: random N(0, I) starts per image; the lowest final MSE is kept.
        lr: Adam's initial learning rate.
        seed: seed of the starts.

    Returns:
        A :class:`Projection`.

    Example:
        >>> import gradleak as gl
        >>> G = gl.generative.load("digits")
        >>> x, _ = gl.data.load("digits", size=32, n=2, split="holdout")
        >>> bool((project(G, x, steps=20, starts=1).psnr > 5).all())
        True
    """
    want = (prior.channels, prior.image_size, prior.image_size)
    if images.dim() != 4 or tuple(images.shape[1:]) != want:
        raise ConfigError(f"images must be (N, {', '.join(map(str, want))}) to project onto "
                          f"this prior; got {tuple(images.shape)}")
    if steps < 0 or starts < 1:
        raise ConfigError("steps must be >= 0 and starts >= 1")
    n = len(images)
    target = images.detach().repeat(starts, 1, 1, 1)
    z = prior.sample_latent(n * starts, torch.Generator().manual_seed(seed)).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    for _ in range(steps):
        loss = (prior(z) - target).pow(2).flatten(1).mean(1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        decoded = prior(z)
        err = (decoded - target).pow(2).flatten(1).mean(1).view(starts, n)
        best = err.argmin(0) * n + torch.arange(n)
        out = decoded[best]
    return Projection(latents=z.detach()[best], images=out, psnr=psnr(out, images.detach()))
