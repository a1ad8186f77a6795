"""``lti`` end to end on 8x8 digits: beats the mean image; a noise-drowned update does not.

Tiny budgets (rows head, hidden 64, 2 epochs of 600 images, ~2 s each); the full comparison
with ``ig`` and the paper's head is ``benchmarks/learned.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import gradleak as gl

SIZE = 8


def _run(seed: int, defense: dict[str, Any] | None) -> tuple[float, float]:
    """Mean PSNR of lti and of the mean auxiliary image on 16 held-out digits."""
    model = gl.models.create("lenet", in_shape=(1, SIZE, SIZE))
    aux = gl.data.load("digits", size=SIZE, n=600, split="train", seed=seed)
    hold_x, hold_y = gl.data.load("digits", size=SIZE, n=None, split="holdout")
    inv = gl.learned.train(model, aux, head="rows", hidden=64, epochs=2, seed=seed,
                           defense=defense, lr=1e-3, groups_per_step=8, val_fraction=0.0)
    mean = aux[0].mean(0, keepdim=True)
    lti, base = [], []
    for i in range(16 * seed, 16 * seed + 16):
        obs, truth = gl.simulate(model, hold_x[i:i + 1], hold_y[i:i + 1], defense=defense,
                                 seed=i)
        lti.append(gl.evaluate(gl.reconstruct(obs, attack="lti", inverter=inv), truth)["psnr"])
        base.append(float(gl.metrics.psnr(mean, truth.images)[0]))
    return float(torch.tensor(lti).mean()), float(torch.tensor(base).mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_lti_beats_the_mean_image(seed: int) -> None:
    lti, mean = _run(seed, None)
    assert lti > mean + 1.0, (lti, mean)


def test_control_an_update_drowned_in_noise_gives_no_more_than_the_mean() -> None:
    lti, mean = _run(0, {"name": "noise", "sigma": 1.0})
    assert lti < mean + 0.5, (lti, mean)


@pytest.mark.parametrize("seed", [0, 1])
def test_refinement_starts_at_the_inverters_output_and_lowers_the_matching_loss(
        seed: int) -> None:
    model = gl.models.create("lenet", in_shape=(1, SIZE, SIZE))
    aux = gl.data.load("digits", size=SIZE, n=200, split="train", seed=seed)
    x, y = gl.data.load("digits", size=SIZE, n=1, split="holdout", seed=seed)
    inv = gl.learned.train(model, aux, head="rows", hidden=32, epochs=1, seed=seed,
                           lr=1e-3, groups_per_step=8, val_fraction=0.0)
    obs, truth = gl.simulate(model, x, y, share_labels=True, seed=seed)
    raw = gl.reconstruct(obs, attack="lti", inverter=inv)
    rec = gl.reconstruct(obs, attack="lti", inverter=inv, refine_iterations=30, seed=seed)
    assert torch.allclose(rec.trace.snapshots[0], raw.images, atol=1e-6)  # the start
    losses = torch.tensor(rec.trace.losses)[:, 0]
    assert float(losses[-1]) < float(losses[0])
    assert rec.images.shape == truth.images.shape
    assert rec.config["refiner"]["iterations"] == 30
    with pytest.raises(gl.ConfigError, match="refine_iterations"):
        gl.reconstruct(obs, attack="lti", inverter=inv, refine_iterations=-1)


def test_inverter_by_path_equals_the_object_and_other_models_are_refused(tmp_path) -> None:
    model = gl.models.create("lenet", in_shape=(1, SIZE, SIZE))
    aux = gl.data.load("digits", size=SIZE, n=100, split="train", seed=0)
    inv = gl.learned.train(model, aux, head="rows", hidden=16, epochs=1, seed=0,
                           lr=1e-3, groups_per_step=8, val_fraction=0.0)
    path = inv.save(tmp_path / "inv.safetensors")
    x, y = gl.data.load("digits", size=SIZE, n=1, split="holdout", seed=0)
    obs, _ = gl.simulate(model, x, y, seed=0)
    by_object = gl.reconstruct(obs, attack="lti", inverter=inv)
    by_path = gl.reconstruct(obs, attack="lti", inverter=str(path))
    assert torch.equal(by_object.images, by_path.images)
    assert by_path.config["inverter"] == str(path)
    assert "Inverter(head='rows'" in by_object.config["inverter"]
    other = gl.models.create("lenet", in_shape=(1, SIZE, SIZE), seed=1)
    obs_other, _ = gl.simulate(other, x, y, seed=0)
    with pytest.raises(gl.errors.ThreatModelError, match="other parameters"):
        gl.reconstruct(obs_other, attack="lti", inverter=str(path))
    with pytest.raises(gl.ConfigError, match="needs a trained inverter"):
        gl.reconstruct(obs, attack="lti")
