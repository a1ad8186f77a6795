"""Tiny untrained priors and observations for the generative attacks' tests."""

from __future__ import annotations

import pytest
import torch

import gradleak as gl
from gradleak.generative import GenerativePrior
from gradleak.generative.arch import GeneratorSpec, build


def tiny_prior(seed: int = 0, *, size: int = 16, channels: int = 1, latent: int = 8,
               dtype: torch.dtype = torch.float32) -> GenerativePrior:
    """An untrained 16 px DCGAN-shaped prior (3 stages), deterministic in ``seed``.

    Its head's weights are scaled up 30x so that samples differ visibly (an untrained
    generator's images are otherwise nearly constant mid-gray).
    """
    torch.manual_seed(seed)
    stem, blocks, head = build(GeneratorSpec(latent_dim=latent, image_size=size,
                                             channels=channels, width=32))
    with torch.no_grad():
        for p in head.parameters():
            p.mul_(30.0)
    prior = GenerativePrior(stem, blocks, head, kind="dcgan", latent_dim=latent,
                            image_size=size, channels=channels)
    return prior.to(dtype)


@pytest.fixture
def prior() -> GenerativePrior:
    return tiny_prior()


@pytest.fixture
def observation(prior: GenerativePrior) -> tuple[gl.Observation, gl.GroundTruth]:
    """Two images *from the prior's range* seen through LeNet's gradient (labels shared)."""
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        x = prior(prior.sample_latent(2, gen))
    torch.manual_seed(1)
    model = gl.models.create("lenet", in_shape=(1, 16, 16), num_classes=10)
    return gl.simulate(model, x, torch.tensor([3, 7]), share_labels=True)
