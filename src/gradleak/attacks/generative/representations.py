"""Generative representations: the engine searches a generator's input, weights or features.

Each representation holds a private frozen copy of the generative prior (eval mode, no
parameter gradients; the caller's prior is never modified) and decodes its tensors into the
candidate batch in the model's input space. Restarts are the first dimension of every tensor.

* :class:`Latent`: one latent code per image, ``w`` (R, B, d); ``decode = G(w)`` (GIAS stage
  1: Jeon et al., "Gradient Inversion with Generative Image Prior", NeurIPS 2021; GGL's and
  GIFD's latent search). Optionally each code is kept on the sphere of radius ``sqrt(d)``
  (GIFD renormalises its latent after each step).
* :class:`LatentAndWeights`: the latent frozen at the previous stage's choice and a separate
  copy of every generator weight per image (GIAS stage 2), decoded with
  ``torch.func.vmap`` over ``functional_call``.
* :class:`Intermediate`: the input of generator block ``k`` per image, started from the
  previous stage's decode path and kept inside an l1 ball around that start (GIFD: Fang et
  al., "GIFD: A Generative Gradient Inversion Method with Feature Domain Optimization",
  ICCV 2023).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from gradleak.attacks.generative.l1ball import project_l1_ball
from gradleak.attacks.optimization.representation import Box, Representation, StageStart
from gradleak.errors import ConfigError

__all__ = ["GenerativeRepresentation", "Intermediate", "Latent", "LatentAndWeights"]


def frozen_copy(prior: nn.Module, like: Tensor) -> nn.Module:
    """A private eval-mode copy of ``prior`` in ``like``'s dtype and device, no gradients."""
    g = copy.deepcopy(prior).to(dtype=like.dtype, device=like.device).eval()
    for p in g.parameters():
        p.requires_grad_(False)
    return g


class GenerativeRepresentation(Representation):
    """Base of the generative representations: a frozen generator copy and its decode path.

    Args:
        shape: one restart's candidate batch (B, C, H, W).
        box: the input space in pixel units.
        prior: a :class:`~gradleak.generative.GenerativePrior` (latent -> [0, 1] images).
    """

    def __init__(self, shape: tuple[int, ...], box: Box, prior: nn.Module) -> None:
        super().__init__(shape, box)
        self.generator = frozen_copy(prior, box.lo)
        self.batch = shape[0]

    def _to_input(self, images: Tensor, restarts: int) -> Tensor:
        """Generator images (R*B, C, H, W) in [0, 1] -> model inputs (R, B, C, H, W)."""
        return self.box.to_input(images.reshape(restarts, self.batch, *images.shape[1:]))

    def features(self, tensors: Sequence[Tensor], k: int) -> Tensor:
        """The input of generator block ``k`` on this representation's decode path,
        (R*B, ...)."""
        raise NotImplementedError(f"{type(self).__name__} cannot start a feature stage")


class Latent(GenerativeRepresentation):
    """One latent code per image, (R, B, d); decode = the generator on it.

    Args:
        sphere: after each step, rescale every code to norm ``sqrt(d)`` (GIFD).
    """

    def __init__(self, shape: tuple[int, ...], box: Box, prior: nn.Module, *,
                 sphere: bool = False) -> None:
        super().__init__(shape, box, prior)
        self.latent_dim = int(prior.latent_dim)  # type: ignore[arg-type]
        self.sphere = sphere

    def draw(self, generator: torch.Generator) -> list[Tensor]:
        """Codes from the prior's latent distribution, (1, B, d)."""
        w = self.generator.sample_latent(self.batch, generator)  # type: ignore[operator]
        return [w.to(self.box.lo)[None]]

    def decode(self, tensors: Sequence[Tensor]) -> Tensor:
        """(R, B, d) -> (R, B, C, H, W) model inputs."""
        w = tensors[0]
        return self._to_input(self.generator(w.reshape(-1, w.shape[-1])), w.shape[0])

    def project(self, tensors: Sequence[Tensor]) -> None:
        """Keeps every code on the sphere of radius ``sqrt(d)`` when ``sphere`` is set."""
        if self.sphere:
            w = tensors[0]
            with torch.no_grad():
                norm = w.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                w.mul_(math.sqrt(self.latent_dim) / norm)

    def features(self, tensors: Sequence[Tensor], k: int) -> Tensor:
        """The input of block ``k`` for the codes."""
        w = tensors[0]
        return self.generator.features(w.reshape(-1, w.shape[-1]), k)  # type: ignore[operator]


class LatentAndWeights(GenerativeRepresentation):
    """GIAS stage 2: the latent frozen, a separate generator copy per image optimised.

    The tensors are the generator's parameters stacked per restart and image,
    (R, B, *p.shape) each, started from the prior's weights; the latent is the previous
    stage's chosen code (it must come from a :class:`Latent` stage).
    """

    def __init__(self, shape: tuple[int, ...], box: Box, prior: nn.Module,
                 start: StageStart | None) -> None:
        super().__init__(shape, box, prior)
        if start is None or not isinstance(start.representation, Latent):
            raise ConfigError("the generator-weights stage must follow a latent stage")
        self.latent = start.tensors[0].detach()[0]  # (B, d)
        named = dict(self.generator.named_parameters())
        self.names = tuple(named)
        self.initial = [named[n].detach() for n in self.names]
        self.buffers = {n: b for n, b in self.generator.named_buffers()}

        def one(params: tuple[Tensor, ...], w: Tensor) -> Tensor:
            state = {**dict(zip(self.names, params, strict=True)), **self.buffers}
            return functional_call(self.generator, state, (w[None],))[0]

        self._decode_all = vmap(one, in_dims=(0, 0))

    def draw(self, generator: torch.Generator) -> list[Tensor]:
        """Every image's copy of every weight, started from the prior, (1, B, *p.shape)."""
        return [p.expand(1, self.batch, *p.shape).clone() for p in self.initial]

    def decode(self, tensors: Sequence[Tensor]) -> Tensor:
        """Each image decoded by its own generator copy from its frozen code."""
        R = tensors[0].shape[0]
        flat = tuple(t.reshape(R * self.batch, *t.shape[2:]) for t in tensors)
        codes = self.latent.expand(R, *self.latent.shape).reshape(R * self.batch, -1)
        return self._to_input(self._decode_all(flat, codes), R)


class Intermediate(GenerativeRepresentation):
    """GIFD: the input of generator block ``k`` per image, inside an l1 ball around its start.

    Args:
        k: the block whose input is optimised (1 <= k < prior.num_stages).
        radius: l1 radius of the ball around the start, relative to the start's own l1 norm
            per image (GIFD's absolute radii were set for BigGAN/StyleGAN2 features; a
            relative radius carries over to other generator widths).
        start: the previous stage's chosen restart (a latent or an earlier feature stage).
    """

    def __init__(self, shape: tuple[int, ...], box: Box, prior: nn.Module, *, k: int,
                 radius: float, start: StageStart | None) -> None:
        super().__init__(shape, box, prior)
        stages = int(prior.num_stages)  # type: ignore[arg-type]
        if not 1 <= k < stages:
            raise ConfigError(f"feature stage k={k} is outside this prior's blocks 1..{stages - 1}")
        prev = None if start is None else start.representation
        if not isinstance(prev, GenerativeRepresentation):
            raise ConfigError("a feature stage must follow a latent or feature stage")
        self.k = k
        with torch.no_grad():
            self.origin = prev.features(start.tensors, k).detach()  # type: ignore[union-attr]
        flat = self.origin.reshape(self.batch, -1)
        self.radius = radius * flat.abs().sum(-1)  # (B,)

    def draw(self, generator: torch.Generator) -> list[Tensor]:
        """The start feature, (1, B, ...)."""
        return [self.origin[None].clone()]

    def decode(self, tensors: Sequence[Tensor]) -> Tensor:
        """Blocks ``k:`` and the head on the features."""
        h = tensors[0]
        R = h.shape[0]
        images = self.generator.decode_from(h.reshape(R * self.batch, *h.shape[2:]),  # type: ignore[operator]
                                            self.k)
        return self._to_input(images, R)

    def project(self, tensors: Sequence[Tensor]) -> None:
        """Projects each image's deviation from the start onto its l1 ball."""
        h = tensors[0]
        with torch.no_grad():
            R = h.shape[0]
            dev = (h - self.origin[None]).reshape(R * self.batch, -1)
            radius = self.radius.repeat(R)
            h.copy_(self.origin[None] + project_l1_ball(dev, radius).reshape(h.shape))

    def features(self, tensors: Sequence[Tensor], k: int) -> Tensor:
        """The input of a later block ``k``: blocks ``self.k:k`` applied to the features."""
        h = tensors[0]
        h = h.reshape(-1, *h.shape[2:])
        for block in self.generator.blocks[self.k:k]:  # type: ignore[union-attr,index]
            h = block(h)
        return h
