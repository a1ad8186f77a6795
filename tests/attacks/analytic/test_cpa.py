"""Cocktail Party Attack (Kariyappa et al., ICML 2023): ICA unmixing of the first layer."""

from __future__ import annotations

import pytest
import torch

import gradleak as gl
from gradleak.attacks.analytic._common import flat_to_images, observed_gradients
from gradleak.attacks.analytic.cpa import unmix_with
from gradleak.errors import ConfigError, ThreatModelError


def _observe(seed: int, b: int = 8, width: int = 64) -> tuple[gl.Observation, gl.GroundTruth]:
    model = gl.models.create("mlp", depth=2, width=width, seed=seed)
    x, y = gl.data.load("sample", size=32, n=b, seed=seed)
    return gl.simulate(model, x, y)


def test_ica_beats_a_random_unmixing_on_two_model_seeds() -> None:
    # B=8 photos at 32 px, width 64: CPA reaches about 16 dB, a random unmixing about 12 dB
    # (over model seeds 0-4 CPA is 16.5, 16.0, 18.3, 10.7, 15.0 dB: seed 3 fails; see the
    # benchmark); the test checks the mean over seeds 0 and 1 against both bands
    cpa, control = [], []
    for seed in (0, 1):
        obs, truth = _observe(seed)
        rec = gl.reconstruct(obs, attack="cpa", seed=seed)
        assert rec.images.shape == truth.images.shape and not rec.partial
        assert rec.labels is None
        cpa.append(gl.evaluate(rec, truth)["psnr"])
        grads = list(observed_gradients(obs).values())
        rot, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64,
                                             generator=torch.Generator().manual_seed(seed)))
        images = flat_to_images(unmix_with(grads[0], grads[1], rot), obs).clamp(0, 1).float()
        rec_c = gl.Reconstruction(images, None, attack="control", config={})
        control.append(gl.evaluate(rec_c, truth)["psnr"])
    assert sum(cpa) / 2 > 15.0
    assert sum(control) / 2 < 13.5


def test_needs_as_many_neurons_as_samples_and_a_valid_config() -> None:
    obs, _ = _observe(0, b=8, width=4)
    with pytest.raises(ThreatModelError, match="at least as many first-layer neurons"):
        gl.reconstruct(obs, attack="cpa")
    with pytest.raises(ConfigError, match="fun must be"):
        gl.attacks.create("cpa", fun="tanh")
    with pytest.raises(ConfigError, match="tol must be > 0"):
        gl.attacks.create("cpa", tol=0.0)
