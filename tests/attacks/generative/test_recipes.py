"""The generative recipes end to end on tiny priors: stages, outputs, errors, recovery."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradleak as gl
from gradleak.errors import ConfigError, ThreatModelError
from gradleak.generative import GenerativePrior

from .conftest import tiny_prior


def test_gias_runs_both_stages_and_stage_two_starts_where_stage_one_ended(
        prior: GenerativePrior, observation) -> None:
    obs, truth = observation
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    rec = gl.reconstruct(obs, attack="gias", generative_prior=prior, iterations=20,
                         weight_iterations=10, restarts=2, seed=0, snapshot_every=10)
    stages = rec.extras["stages"]
    assert [s["name"] for s in stages] == ["latent", "weights"]
    assert rec.extras["chosen_stage"] == "weights"
    assert rec.images.shape == truth.images.shape
    its = rec.trace.snapshot_iterations
    assert its == [0, 10, 20, 20, 30]
    assert torch.allclose(rec.trace.snapshots[2], rec.trace.snapshots[3], atol=1e-6)
    assert len(rec.trace.losses) == 30
    # stage 2 changed the images through the per-image copies only
    assert not torch.allclose(rec.trace.snapshots[-1], rec.trace.snapshots[2], atol=1e-4)
    assert all(torch.equal(before[k], v) for k, v in prior.state_dict().items())
    assert rec.config["generative_prior"]["kind"] == "dcgan"


def test_gias_without_stage_two_is_the_latent_search(prior: GenerativePrior,
                                                      observation) -> None:
    obs, _ = observation
    rec = gl.reconstruct(obs, attack="gias", generative_prior=prior, iterations=10,
                         weight_iterations=0, restarts=1)
    assert "stages" not in rec.extras and len(rec.trace.losses) == 10


def test_gifd_returns_the_best_matching_stage(prior: GenerativePrior, observation) -> None:
    obs, _ = observation
    rec = gl.reconstruct(obs, attack="gifd", generative_prior=prior, iterations=15,
                         feature_iterations=8, restarts=2, seed=1)
    stages = rec.extras["stages"]
    assert [s["name"] for s in stages] == ["latent", "layer 1", "layer 2"]
    best = min(stages, key=lambda s: s["score"])
    assert rec.extras["chosen_stage"] == best["name"]
    assert rec.trace.restart_scores[rec.trace.best_restart] == pytest.approx(best["score"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gias_recovers_images_in_the_priors_range(seed: int) -> None:
    """Two-sided: the latent search beats the prior's random samples by a wide margin.

    Budget and floor chosen on seeds 10-12 (worst 39.6 dB at 300 iterations, 2 restarts;
    random samples 12-25 dB there), tested on seeds 0-2.
    """
    prior = tiny_prior(seed)
    gen = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        x = prior(prior.sample_latent(2, gen))
        control = prior(prior.sample_latent(2, gen))
    torch.manual_seed(seed)
    model = gl.models.create("lenet", in_shape=(1, 16, 16), num_classes=10)
    obs, truth = gl.simulate(model, x, torch.tensor([1, 4]), share_labels=True)
    rec = gl.reconstruct(obs, attack="gias", generative_prior=prior, iterations=300, lr=0.1,
                         weight_iterations=0, restarts=2, seed=seed)
    got = float(gl.evaluate(rec, truth)["psnr"])
    random_sample = float(gl.metrics.psnr(control, x).mean())
    assert got > 35.0, got
    assert random_sample < 30.0, random_sample


def _linear_prior(latent: int, size: int) -> GenerativePrior:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(latent, size * size), nn.Sigmoid(),
                        nn.Unflatten(1, (1, size, size)))
    return gl.generative.wrap(net, latent_dim=latent, image_size=size, channels=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ggl_cma_es_finds_the_optimum_of_a_toy_matching_problem(seed: int) -> None:
    prior = _linear_prior(4, 8)
    w_true = torch.randn(1, 4, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        x = prior(w_true)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
    obs, truth = gl.simulate(model, x, torch.tensor([2]), share_labels=True)
    rec = gl.reconstruct(obs, attack="ggl", generative_prior=prior, generations=60,
                         population=16, kl_weight=0.0, seed=seed)
    short = gl.reconstruct(obs, attack="ggl", generative_prior=prior, generations=1,
                           population=4, kl_weight=0.0, seed=seed)
    assert float(gl.evaluate(rec, truth)["psnr"]) > 40.0
    assert rec.trace.restart_scores[0] < 1e-3 * max(short.trace.restart_scores[0], 1e-12) + 1e-9
    assert float(gl.evaluate(short, truth)["psnr"]) < 40.0


def test_ggl_adaptive_estimates_clipping_and_pruning() -> None:
    from gradleak.attacks.generative.adaptive import estimate_defense
    from gradleak.attacks.optimization.distances import GradientSpace

    target = torch.tensor([3.0, 0.0, -4.0, 0.0])  # norm 5, half zeros
    defend = estimate_defense(GradientSpace.build([target[:2], target[2:]], [1.0, 1.0]))
    out = defend(torch.tensor([[30.0, 40.0, 0.0, 0.0], [1.0, -2.0, 0.5, 0.25]]))
    assert torch.allclose(out[0], torch.tensor([0.0, 4.0, 0.0, 0.0]))  # clipped to 3, 4; pruned
    assert torch.allclose(out[1], torch.tensor([0.0, -2.0, 0.5, 0.0]))  # top half per tensor


def test_missing_or_mismatched_priors_and_bad_settings_are_clear_errors(
        prior: GenerativePrior, observation) -> None:
    obs, _ = observation
    for attack in ("gias", "gifd", "ggl"):
        with pytest.raises(ThreatModelError, match="generative prior"):
            gl.reconstruct(obs, attack=attack)
        with pytest.raises(ConfigError, match="16x16"):
            gl.reconstruct(obs, attack=attack, generative_prior=tiny_prior(size=32))
        with pytest.raises(ConfigError, match="GenerativePrior"):
            gl.reconstruct(obs, attack=attack, generative_prior=nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="weight_lr"):
        gl.reconstruct(obs, attack="gias", generative_prior=prior, weight_lr=float("nan"))
    with pytest.raises(ConfigError, match="labels"):
        gl.reconstruct(obs, attack="ggl", generative_prior=prior, labels="joint")
    with pytest.raises(ConfigError, match="layers"):
        gl.reconstruct(obs, attack="gifd", generative_prior=prior, layers=(5,))
    with pytest.raises(ConfigError, match="l1_radius"):
        gl.reconstruct(obs, attack="gifd", generative_prior=prior, l1_radius=-1.0)
    hidden, _ = gl.simulate(obs.model, torch.rand(2, 1, 16, 16), torch.tensor([0, 1]),
                            share_batch_size=True)
    with pytest.raises(ThreatModelError, match="labels"):
        gl.reconstruct(hidden, attack="ggl", generative_prior=prior)
