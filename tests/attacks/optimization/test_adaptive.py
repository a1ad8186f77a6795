"""``adaptive=True``: the engine matches through the surrogate of the declared defense."""

from __future__ import annotations

import pytest
import torch

import gradleak as gl
from gradleak.attacks.optimization.engine import adaptive_transform
from gradleak.attacks.optimization.objective import MatchingObjective
from gradleak.errors import ThreatModelError


def _obs(defense: dict | None, seed: int):
    torch.manual_seed(seed)
    model = gl.models.create("lenet", in_shape=(3, 16, 16))
    x, y = gl.data.load("sample", size=16, n=1, seed=seed)
    return gl.simulate(model, x, y, share_labels=True, defense=defense, seed=seed)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("defense", [{"name": "prune", "ratio": 0.9},
                                     {"name": "clip", "max_norm": 0.01},
                                     {"name": "sign"}])
def test_the_true_batch_matches_exactly_only_through_the_surrogate(defense: dict,
                                                                    seed: int) -> None:
    obs, truth = _obs(defense, seed)
    z = obs.normalize(truth.images)[None]
    plain = MatchingObjective(obs, distance="l2", layer_weights="uniform", bn_stats=False,
                              batch_size=1)
    adaptive = MatchingObjective(obs, distance="l2", layer_weights="uniform", bn_stats=False,
                                 batch_size=1, transform=adaptive_transform(obs, "ig"))
    with torch.enable_grad():
        d_plain = float(plain(z, obs.labels)[0].detach())
        d_adaptive = float(adaptive(z, obs.labels)[0].detach())
    scale = float(torch.cat([u.reshape(-1) for u in obs.update]).pow(2).sum())
    assert d_adaptive <= 1e-8 * scale
    assert d_plain > 1e-3 * scale


def test_adaptive_needs_a_declared_defense_with_a_surrogate() -> None:
    obs, _ = _obs(None, 0)
    with pytest.raises(ThreatModelError, match="declared"):
        gl.reconstruct(obs, attack="ig", iterations=2, adaptive=True)
    with pytest.raises(gl.ConfigError, match="adaptive"):
        gl.reconstruct(obs, attack="ig", iterations=2, adaptive="yes")
