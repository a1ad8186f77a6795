"""The bias attack (Phong et al. 2017; Geiping et al. 2020, Sec. 4) and its batch-2 picture."""

from __future__ import annotations

import pytest
import torch

import gradleak as gl
from gradleak.attacks.analytic import invert_features, recover_linear_input
from gradleak.attacks.analytic.bias import cluster_rows, row_recoveries
from gradleak.errors import ConfigError, ThreatModelError

from .helpers import max_rel_error, photos


@pytest.mark.parametrize(("dtype", "bound"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_batch_one_is_exact_on_the_seeds_mlp(dtype: torch.dtype, bound: float) -> None:
    model = gl.models.create("mlp", depth=4).to(dtype)
    x = photos(1, dtype=dtype)
    obs, truth = gl.simulate(model, x, torch.tensor([3]))
    rec = gl.reconstruct(obs, attack="bias")
    assert rec.images.dtype == dtype
    assert float((rec.images - truth.images).abs().max()) < bound
    assert rec.extras["separated"] == 1 and rec.extras["mixed_rows"] == 0
    assert rec.extras["max_row_deviation"] < (1e-4 if dtype == torch.float32 else 1e-12)


def test_fedavg_one_step_delta_and_normalisation() -> None:
    model = gl.models.create("mlp", depth=3, width=64).double()
    x = photos(1, dtype=torch.float64)
    norm = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    obs, truth = gl.simulate(model, x, torch.tensor([1]), local_steps=1, local_batch_size=1,
                             local_lr=0.05, normalization=norm)
    assert obs.kind == "delta"
    rec = gl.reconstruct(obs, attack="bias")
    assert float((rec.images - truth.images).abs().max()) < 1e-10


def test_unknown_batch_size_of_one_is_found_by_clustering() -> None:
    model = gl.models.create("mlp", depth=2, width=128).double()
    x = photos(1, dtype=torch.float64)
    obs, truth = gl.simulate(model, x, torch.tensor([2]), share_batch_size=False)
    rec = gl.reconstruct(obs, attack="bias")
    assert rec.images.shape[0] == 1
    assert rec.extras["distinct_row_recoveries"] == 1
    assert float((rec.images - truth.images).abs().max()) < 1e-10


def test_batch_of_two_separates_rows_driven_by_one_sample() -> None:
    model = gl.models.create("mlp", depth=2, width=512).double()
    x = photos(2, dtype=torch.float64)
    obs, truth = gl.simulate(model, x, torch.tensor([4, 4]))
    rec = gl.reconstruct(obs, attack="bias")
    assert rec.extras["separated"] == 2
    assert rec.extras["single_sample_rows"] + rec.extras["mixed_rows"] == rec.extras["rows_used"]
    assert max_rel_error(rec.images, truth.images) < 1e-6


def test_sigmoid_batch_of_two_has_no_single_sample_row() -> None:
    model = gl.models.create("mlp", depth=2, width=128, activation="sigmoid").double()
    obs, _ = gl.simulate(model, photos(2, dtype=torch.float64), torch.tensor([0, 1]))
    rec = gl.reconstruct(obs, attack="bias")
    assert rec.extras["separated"] == 0
    assert rec.extras["fallback"].startswith("mixture")
    assert rec.images.shape[0] == 1


def test_row_recoveries_match_a_literal_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    gw = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    gb = torch.randn(7, generator=gen, dtype=torch.float64)
    gb[2] = 0.0
    rec, rows = row_recoveries(gw, gb)
    expected = [(i, gw[i] / gb[i]) for i in range(7) if gb[i] != 0]
    assert rows.tolist() == [i for i, _ in expected]
    for r, (_, e) in zip(rec, expected, strict=True):
        assert torch.allclose(r, e, rtol=0, atol=1e-15)


def test_cluster_rows_groups_coinciding_vectors() -> None:
    a, b = torch.ones(4, dtype=torch.float64), torch.arange(4, dtype=torch.float64)
    vecs = torch.stack([a, b, a * (1 + 1e-9), b, a + 1])
    clusters = cluster_rows(vecs, torch.arange(5), tolerance=1e-6)
    assert sorted(sorted(c.tolist()) for c in clusters) == [[0, 2], [1, 3], [4]]


def test_later_layer_features_are_recovered_exactly() -> None:
    model = gl.models.create("mlp", depth=3, width=64).double()
    x = photos(1, dtype=torch.float64)
    obs, _ = gl.simulate(model, x, torch.tensor([5]))
    feats = recover_linear_input(obs, "layers.3")
    seen = {}
    handle = model.layers[3].register_forward_hook(lambda m, i, o: seen.update(x=i[0]))
    model(x)
    handle.remove()
    true = seen["x"].detach().reshape(-1)
    assert float((feats.features - true).norm() / true.norm()) < 1e-10
    assert feats.max_row_deviation < 1e-10


def test_feature_inversion_reduces_the_feature_error() -> None:
    model = gl.models.create("mlp", depth=3, width=64, in_shape=(1, 8, 8)).double()
    x = photos(1, size=8, dtype=torch.float64).mean(1, keepdim=True)
    obs, _ = gl.simulate(model, x, torch.tensor([1]))
    target = recover_linear_input(obs, "layers.3").features
    img = invert_features(obs, "layers.3", target, iterations=150, lr=0.1)
    seen = {}
    handle = model.layers[3].register_forward_hook(lambda m, i, o: seen.update(x=i[0]))
    model(torch.full_like(x, 0.5))
    start = float((seen["x"].detach().reshape(-1) - target).norm() / target.norm())
    model(img)
    handle.remove()
    end = float((seen["x"].detach().reshape(-1) - target).norm() / target.norm())
    assert img.shape == x.shape and 0 <= float(img.min()) and float(img.max()) <= 1
    assert end < 0.5 * start


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("lenet", {}, "fully connected first layer"),
        ("mlp", {"bias": False, "width": 32, "depth": 2}, "bias in the first linear layer"),
    ],
)
def test_threat_model_errors(name: str, kwargs: dict, message: str) -> None:
    model = gl.models.create(name, **kwargs)
    obs, _ = gl.simulate(model, photos(1), torch.tensor([1]))
    with pytest.raises(ThreatModelError, match=message):
        gl.reconstruct(obs, attack="bias")


def test_multi_step_fedavg_is_refused() -> None:
    model = gl.models.create("mlp", depth=2, width=32)
    obs, _ = gl.simulate(model, photos(1), torch.tensor([1]), local_steps=3)
    with pytest.raises(ThreatModelError, match="ONE local step"):
        gl.reconstruct(obs, attack="bias")


def test_batch_of_40_is_a_partial_result_that_evaluate_scores() -> None:
    model = gl.models.create("mlp", depth=2, width=256, in_shape=(3, 16, 16))
    x, y = gl.data.load("sample", size=16, n=40, seed=0)
    obs, truth = gl.simulate(model, x, y)
    rec = gl.reconstruct(obs, attack="bias")
    assert rec.expected == 40 and rec.partial and 0 < rec.found < 40
    assert "only" in rec.extras["partial"] and rec.extras["found"] == rec.found
    scores = gl.evaluate(rec, truth)
    assert scores["num_recovered"] == rec.found and scores["num_missed"] == 40 - rec.found
    assert sum(p["missed"] for p in scores["per_image"]) == 40 - rec.found


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_cluster_size": 0}, "min_cluster_size must be > 0"),
        ({"cluster_tolerance": -1.0}, "cluster_tolerance must be >= 0"),
        ({"bias_threshold": float("inf")}, "bias_threshold must be finite"),
        ({"max_candidates": 0}, "max_candidates must be > 0"),
    ],
)
def test_config_is_validated_when_the_attack_is_built(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        gl.attacks.create("bias", **overrides)
