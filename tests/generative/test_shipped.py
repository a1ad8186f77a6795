"""The priors shipped with gradleak: one per offline domain, small, loadable by name."""

from __future__ import annotations

import pytest
import torch

import gradleak as gl
from gradleak.generative.io import shipped_dir

DOMAINS = {"digits": 1, "faces": 1, "patches": 3}


def test_one_small_prior_per_domain() -> None:
    assert set(gl.generative.available()) == set(DOMAINS)
    total = sum(p.stat().st_size for p in shipped_dir().glob("*.safetensors"))
    assert total < 5_000_000


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_shipped_prior_loads_and_describes_itself(name: str) -> None:
    G = gl.generative.load(name)
    assert G.kind in ("dcgan", "vae") and G.image_size == 32 and G.channels == DOMAINS[name]
    meta = G.metadata
    assert meta["command"].startswith(f"python scripts/build_priors.py --domains {name} ")
    assert meta["data"].startswith(f"{name} (split 'train'")  # never the holdout split
    assert meta["train"]["seed"] == 0 and meta["train_seconds"] > 0
    x = G(G.sample_latent(4, torch.Generator().manual_seed(0)))
    assert x.shape == (4, DOMAINS[name], 32, 32)
    assert float(x.std()) > 0.02  # not a constant image
    for k in range(G.num_stages):
        z = G.sample_latent(2, torch.Generator().manual_seed(k))
        assert torch.equal(G.decode_from(G.features(z, k), k), G(z))
