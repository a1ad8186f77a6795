"""The training objectives of the prior kinds, registered by name: ``dcgan`` and ``vae``.

Both train the same generator network (:mod:`gradleak.generative.arch`) and differ only in the
objective and the auxiliary network:

* ``dcgan`` (Radford, Metz & Chintala, ICLR 2016): a convolutional discriminator, the
  non-saturating GAN loss of Goodfellow et al. (NeurIPS 2014), Adam(beta1 = 0.5), batch norm
  in both networks while training, tanh output.
* ``vae`` (Kingma & Welling, ICLR 2014): a convolutional encoder to a diagonal Gaussian
  posterior, reparameterised samples, Gaussian likelihood with a fixed ``recon_sigma`` and
  the KL divergence to N(0, I); sigmoid output, no norm.

A kind owns its auxiliary modules and optimisers (all exposed for checkpointing) and takes one
step on a batch; the loop in :mod:`gradleak.generative.training` does the rest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradleak.generative.arch import BASE_SIZE, GeneratorSpec
from gradleak.generative.prior import GenerativePrior
from gradleak.registry import Registry


@dataclass(frozen=True)
class KindSettings:
    """Settings a kind reads (the fields of the training config it needs)."""

    latent_dim: int
    lr: float
    recon_sigma: float


class Kind(ABC):
    """One prior kind's objective: auxiliary networks, optimisers and a training step."""

    #: the generator's output activation
    head: ClassVar[str]
    #: the generator's norm while training
    norm: ClassVar[str]
    #: Adam learning rate used when the caller gives none
    default_lr: ClassVar[float]
    #: the names of the losses :meth:`step` reports
    loss_names: ClassVar[tuple[str, ...]]

    def __init__(self, generator: GenerativePrior, spec: GeneratorSpec, s: KindSettings) -> None:
        self.generator = generator
        self.spec = spec
        self.settings = s

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every trained module by name (the generator as ``"generator"``)."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser by name."""

    @abstractmethod
    def step(self, x: Tensor, rng: torch.Generator) -> dict[str, float]:
        """One optimisation step on the batch ``x`` (N, C, S, S) in [0, 1]; returns losses."""


KINDS: Registry[type[Kind]] = Registry("prior kind")


def register_kind(name: str) -> Callable[[type[Kind]], type[Kind]]:
    """Class decorator registering a :class:`Kind` under ``name`` (duplicates refused)."""
    return KINDS.register(name)


def _encoder(spec: GeneratorSpec, out_features: int, norm: bool) -> nn.Sequential:
    """Mirror of the generator: stride-2 4x4 convolutions down to 4x4, then a linear layer."""
    ch = spec.stage_channels()[::-1]
    layers: list[nn.Module] = []
    cin = spec.channels
    for i, cout in enumerate(ch[1:]):
        layers.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1))
        if norm and i > 0:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.LeakyReLU(0.2))
        cin = cout
    layers += [nn.Flatten(), nn.Linear(cin * BASE_SIZE * BASE_SIZE, out_features)]
    return nn.Sequential(*layers)


def _adam(module: nn.Module, lr: float, beta1: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(beta1, 0.999))


@register_kind("dcgan")
class DCGAN(Kind):
    """DCGAN: generator vs. discriminator, non-saturating loss, Adam(2e-4, beta1 = 0.5)."""

    head = "tanh"
    norm = "batch"
    default_lr = 2e-4
    loss_names = ("d_loss", "g_loss")

    def __init__(self, generator: GenerativePrior, spec: GeneratorSpec, s: KindSettings) -> None:
        super().__init__(generator, spec, s)
        self.discriminator = _encoder(spec, 1, norm=True)
        self.opt_g = _adam(generator, s.lr, 0.5)
        self.opt_d = _adam(self.discriminator, s.lr, 0.5)

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def step(self, x: Tensor, rng: torch.Generator) -> dict[str, float]:
        n = len(x)
        real = x * 2.0 - 1.0  # the discriminator sees [-1, 1], as in DCGAN
        z = torch.randn(n, self.settings.latent_dim, generator=rng)
        fake = self.generator(z) * 2.0 - 1.0
        ones, zeros = torch.ones(n, 1), torch.zeros(n, 1)
        d_loss = F.binary_cross_entropy_with_logits(
            self.discriminator(real), ones
        ) + F.binary_cross_entropy_with_logits(self.discriminator(fake.detach()), zeros)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(self.discriminator(fake), ones)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach())}


@register_kind("vae")
class VAE(Kind):
    """VAE: Gaussian encoder, decoder = the generator, loss = SSE / (2 sigma^2) + KL."""

    head = "sigmoid"
    norm = "none"
    default_lr = 1e-3
    loss_names = ("loss", "recon_mse", "kl")

    def __init__(self, generator: GenerativePrior, spec: GeneratorSpec, s: KindSettings) -> None:
        super().__init__(generator, spec, s)
        self.encoder = _encoder(spec, 2 * s.latent_dim, norm=False)
        self.opt = torch.optim.Adam(
            list(generator.parameters()) + list(self.encoder.parameters()), lr=s.lr
        )

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "encoder": self.encoder}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": self.opt}

    def step(self, x: Tensor, rng: torch.Generator) -> dict[str, float]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        logvar = logvar.clamp(-10.0, 10.0)
        eps = torch.randn(mu.shape, generator=rng)
        recon = self.generator(mu + eps * torch.exp(0.5 * logvar))
        sse = (recon - x).pow(2).flatten(1).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        loss = (sse / (2.0 * self.settings.recon_sigma**2) + kl).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {
            "loss": float(loss.detach()),
            "recon_mse": float(sse.detach().mean()) / x[0].numel(),
            "kl": float(kl.detach().mean()),
        }
