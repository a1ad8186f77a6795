"""Tiny priors shared by the generative tests (8x8, a few hundred parameters' worth of work)."""

from __future__ import annotations

import pytest
import torch

import gradleak as gl
from gradleak.generative import GenerativePrior


@pytest.fixture(scope="module")
def digits8() -> torch.Tensor:
    x, _ = gl.data.load("digits", size=8, n=128, seed=0, split="train")
    return x


@pytest.fixture(scope="module")
def tiny_dcgan(digits8: torch.Tensor) -> GenerativePrior:
    return gl.generative.train(digits8, kind="dcgan", image_size=8, epochs=1, batch_size=32,
                               latent_dim=6, width=16, seed=0)


@pytest.fixture(scope="module")
def tiny_vae(digits8: torch.Tensor) -> GenerativePrior:
    return gl.generative.train(digits8, kind="vae", image_size=8, epochs=1, batch_size=32,
                               latent_dim=6, width=16, seed=0)
