"""R-GAP (Zhu & Blaschko, ICLR 2021): recursive closed-form inversion and its rank analysis."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import gradleak as gl
from gradleak.attacks.analytic.rgap import logistic_margins, rank_table
from gradleak.errors import ThreatModelError
from gradleak.metrics import psnr

from .helpers import TinyCNN, photos


def test_cnn6_on_a_real_photo_reaches_40_db_with_unknown_label() -> None:
    model = gl.models.create("cnn6")
    obs, truth = gl.simulate(model, photos(1), torch.tensor([1]))
    assert obs.loss == "logistic" and obs.labels is None
    rec = gl.reconstruct(obs, attack="rgap")
    assert float(psnr(rec.images, truth.images)[0]) >= 40.0
    assert rec.labels is not None and rec.labels.tolist() == [1]
    table = rec.extras["rank_analysis"]
    assert [r["layer"] for r in table] == [
        "body.0", "body.2", "body.4", "body.6", "body.8", "body.10", "fc"
    ]
    assert [r["unknowns"] for r in table] == [3072, 3468, 2916, 2916, 2916, 1600, 3200]
    assert [r["forward_constraints"] for r in table] == [3468, 2916, 2916, 2916, 1600, 3200, 0]
    assert [r["gradient_constraints"] for r in table] == [576, 3888, 11664, 11664, 20736,
                                                          73728, 3200]
    assert all(r["invertible"] for r in table) and rec.extras["invertible"]
    assert "body.0" in rank_table(table)


def test_tiny_cnn_float64_is_exact_and_ranks_agree_with_svd() -> None:
    model = TinyCNN().double()
    x = photos(1, size=8, dtype=torch.float64)
    obs, truth = gl.simulate(model, x, torch.tensor([2]))
    rec = gl.reconstruct(obs, attack="rgap")
    err = (rec.images - truth.images).norm() / truth.images.norm()
    assert float(err) < 1e-6
    assert rec.labels.tolist() == [2]  # the bias gradient's negative entry
    ref = gl.reconstruct(obs, attack="rgap", solver="svd")
    assert [r["rank"] for r in ref.extras["rank_analysis"]] == [
        r["rank"] for r in rec.extras["rank_analysis"]
    ]
    assert float((ref.images - rec.images).abs().max()) < 1e-8


def test_rank_deficient_layer_is_reported() -> None:
    # one 3x3 filter with stride 2 on 3x8x8: 16 + 27 constraints for 192 unknowns
    model = nn.Sequential(
        nn.Conv2d(3, 1, 3, stride=2, padding=1, bias=False), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(16, 3),
    ).double()
    obs, _ = gl.simulate(model, photos(1, size=8, dtype=torch.float64), torch.tensor([0]))
    rec = gl.reconstruct(obs, attack="rgap")
    first = rec.extras["rank_analysis"][0]
    assert first["unknowns"] == 192 and first["constraints"] == 16 + 27
    assert not first["invertible"] and first["deficiency"] >= 192 - 43
    assert not rec.extras["invertible"]


@pytest.mark.parametrize("activation", ["sigmoid", "leaky_relu", "tanh"])
def test_mlp_chain_is_exact(activation: str) -> None:
    model = gl.models.create("mlp", depth=3, width=32, activation=activation,
                             in_shape=(3, 8, 8)).double()
    obs, truth = gl.simulate(model, photos(1, size=8, dtype=torch.float64), torch.tensor([7]))
    rec = gl.reconstruct(obs, attack="rgap")
    assert float((rec.images - truth.images).norm() / truth.images.norm()) < 1e-6


def test_logistic_margins_solve_the_scalar_equation() -> None:
    for c in (0.3, 2.0, -0.1, -0.25):
        roots = logistic_margins(c)
        assert len(roots) == (1 if c > 0 else 2)
        for s in roots:
            assert abs(-s / (1 + math.exp(s)) - c) < 1e-12


def test_batch_of_two_and_pooling_are_refused() -> None:
    model = gl.models.create("cnn6")
    obs, _ = gl.simulate(model, photos(2), torch.tensor([0, 1]))
    with pytest.raises(ThreatModelError, match="batch of one"):
        gl.reconstruct(obs, attack="rgap")
    pooled = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Linear(64, 2))
    obs, _ = gl.simulate(pooled, photos(1, size=8), torch.tensor([0]))
    with pytest.raises(ThreatModelError, match="MaxPool2d"):
        gl.reconstruct(obs, attack="rgap")


def test_cross_entropy_without_last_bias_is_refused() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 8), nn.Sigmoid(),
                          nn.Linear(8, 3, bias=False))
    obs, _ = gl.simulate(model, photos(1, size=8), torch.tensor([0]))
    with pytest.raises(ThreatModelError, match="bias in the last layer"):
        gl.reconstruct(obs, attack="rgap")


@pytest.mark.parametrize("bad, words", [
    ({"solver": "qr"}, "solver must be one of"),
    ({"rank_tol": float("nan")}, "rank_tol must be finite"),
    ({"prune_factor": 0.0}, "prune_factor must be > 0"),
    ({"prune_floor": -1.0}, "prune_floor must be >= 0"),
])
def test_bad_settings_are_refused_when_the_attack_is_built(bad: dict, words: str) -> None:
    from gradleak.attacks.base import create
    from gradleak.errors import ConfigError

    with pytest.raises(ConfigError, match=words):
        create("rgap", **bad)


def test_trace_scores_every_hypothesis_and_marks_the_kept_one() -> None:
    model = TinyCNN().double()
    obs, _ = gl.simulate(model, photos(1, size=8, dtype=torch.float64), torch.tensor([2]))
    rec = gl.reconstruct(obs, attack="rgap")
    scores = rec.trace.restart_scores
    finished = [h for h in rec.extras["hypotheses"] if h["finished"]]
    assert len(scores) == len(finished) >= 1
    assert scores[rec.trace.best_restart] == min(scores)
    assert rec.extras["found"] == 1 and not rec.partial
