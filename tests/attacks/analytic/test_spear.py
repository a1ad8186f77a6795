"""SPEAR (Dimitrov et al., NeurIPS 2024): exact batch recovery without labels."""

from __future__ import annotations

import threading
import time

import pytest
import torch

import gradleak as gl
from gradleak.errors import ConfigError, ThreatModelError

from .helpers import matched_psnr, max_rel_error, photos


def _observe(b: int, seed: int, dtype: torch.dtype, labels: torch.Tensor | None = None,
             width: int = 400, size: int = 16) -> tuple[gl.Observation, gl.GroundTruth]:
    model = gl.models.create("mlp", depth=2, width=width, in_shape=(3, size, size),
                             seed=seed).to(dtype)
    x, _ = gl.data.load("sample", size=size, n=b, seed=seed)
    y = labels if labels is not None else torch.zeros(b, dtype=torch.long)
    return gl.simulate(model, x.to(dtype), y)


@pytest.mark.parametrize(
    ("seed", "dtype"),
    [(0, torch.float32), (1, torch.float32), (2, torch.float32), (3, torch.float64),
     (4, torch.float64)],
)
def test_batch_of_12_equal_labels_is_exact_on_several_model_seeds(
    seed: int, dtype: torch.dtype
) -> None:
    obs, truth = _observe(12, seed, dtype)
    rec = gl.reconstruct(obs, attack="spear", seed=seed)
    assert rec.images.shape == truth.images.shape and not rec.partial
    assert bool((matched_psnr(rec.images, truth.images) > 60).all())
    # the self-check (no ground truth) agrees; labels are fitted from each sample's column
    assert rec.extras["recovered"] == 12
    assert rec.labels.tolist() == [0] * 12
    assert rec.extras["observation_dtype"] == str(dtype).replace("torch.", "")


def test_float64_is_exact_to_1e6_relative_error() -> None:
    model = gl.models.create("mlp", depth=2, width=300, in_shape=(3, 16, 16)).double()
    x = photos(8, size=16, dtype=torch.float64)
    obs, truth = gl.simulate(model, x, torch.full((8,), 3, dtype=torch.long))
    rec = gl.reconstruct(obs, attack="spear")
    assert max_rel_error(rec.images, truth.images) < 1e-6
    assert rec.labels.tolist() == [3] * 8


def test_random_labels_float32() -> None:
    y = torch.randint(0, 10, (10,), generator=torch.Generator().manual_seed(7))
    obs, truth = _observe(10, 5, torch.float32, labels=y)
    rec = gl.reconstruct(obs, attack="spear")
    assert bool((matched_psnr(rec.images, truth.images) > 60).all())
    scores = gl.evaluate(rec, truth)
    assert scores["label_acc"] == 1.0 and scores["num_missed"] == 0


def test_budget_is_deterministic_under_cpu_load() -> None:
    obs, _ = _observe(10, 6, torch.float32)
    quiet = gl.reconstruct(obs, attack="spear", seed=3)
    stop = threading.Event()

    def burn() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    thread = threading.Thread(target=burn, daemon=True)
    thread.start()
    try:
        busy = gl.reconstruct(obs, attack="spear", seed=3)
    finally:
        stop.set()
        thread.join()
    assert torch.equal(quiet.images, busy.images)
    assert quiet.extras["search"] == busy.extras["search"]
    assert quiet.extras["rounds"] == busy.extras["rounds"]


def test_out_of_budget_is_a_partial_result_that_evaluate_scores() -> None:
    # a narrow layer (150 neurons for 20 samples) and a one-round budget: not all found
    obs, truth = _observe(20, 0, torch.float32, width=150)
    rec = gl.reconstruct(obs, attack="spear", max_rounds=1, pivots_per_round=4,
                         samples_per_round=0)
    assert rec.partial and rec.expected == 20 and 0 < rec.found < 20
    assert rec.extras["stopped_by"] == "rounds" and "partial" in rec.extras
    scores = gl.evaluate(rec, truth)
    assert scores["partial"] and scores["num_missed"] == 20 - rec.found
    assert scores["num_images"] == 20 and len(scores["per_image"]) == 20
    assert scores["num_recovered"] == rec.found
    # what is returned is exact (ratios of single-sample rows); the rest is counted missed
    assert all(p["psnr"] > 60 for p in scores["per_image"] if not p["missed"])


def test_wall_clock_limit_is_honoured_within_ten_percent() -> None:
    obs, _ = _observe(32, 1, torch.float32, width=1000, size=32)
    limit = 3.0
    t0 = time.perf_counter()
    rec = gl.reconstruct(obs, attack="spear", max_seconds=limit, max_rounds=1000)
    elapsed = time.perf_counter() - t0
    if rec.extras["stopped_by"] == "time":
        assert rec.trace.wall_time <= 1.1 * limit
    else:  # the machine was fast enough to finish: nothing to interrupt
        assert elapsed <= 1.1 * limit


def test_one_step_delta_unknown_batch_size_and_normalisation() -> None:
    model = gl.models.create("mlp", depth=2, width=256, in_shape=(3, 16, 16)).double()
    x = photos(4, size=16, dtype=torch.float64)
    obs, truth = gl.simulate(model, x, torch.tensor([1, 1, 1, 1]), local_steps=1,
                             local_batch_size=4, local_lr=0.1, share_batch_size=False,
                             normalization=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    assert obs.kind == "delta" and obs.batch_size is None
    rec = gl.reconstruct(obs, attack="spear")
    assert rec.extras["batch_size"] == 4 and not rec.extras["batch_size_shared"]
    assert rec.expected == 4
    assert max_rel_error(rec.images, truth.images) < 1e-6


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"irls_p": 3.0}, "irls_p"),
        ({"max_rounds": 0}, "max_rounds must be > 0"),
        ({"noise_factor": float("nan")}, "noise_factor must be finite"),
        ({"max_seconds": -1.0}, "max_seconds must be > 0"),
        ({"zero_tol": 0.5}, "zero_tol"),
    ],
)
def test_config_is_validated_when_the_attack_is_built(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        gl.attacks.create("spear", **overrides)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("lenet", {}, "fully connected first layer"),
        ("mlp", {"depth": 2, "width": 32, "bias": False}, "bias in the first linear layer"),
        ("mlp", {"depth": 2, "width": 32, "activation": "sigmoid"}, "ReLU right after"),
    ],
)
def test_threat_model_errors(name: str, kwargs: dict, message: str) -> None:
    model = gl.models.create(name, **kwargs)
    obs, _ = gl.simulate(model, photos(2), torch.tensor([0, 0]))
    with pytest.raises(ThreatModelError, match=message):
        gl.reconstruct(obs, attack="spear")


def test_inputs_failing_their_own_gradient_check_are_not_returned() -> None:
    obs, truth = _observe(4, 1, torch.float32)
    full = gl.reconstruct(obs, attack="spear")
    assert not full.partial and full.found == 4
    strict = gl.reconstruct(obs, attack="spear", verify_tol=1e-30)  # nothing can pass
    assert strict.partial and strict.expected == 4 and strict.found == 0
    assert "gradient check" in strict.extras["partial"]
    scores = gl.evaluate(strict, truth)
    assert scores["num_missed"] == 4 and scores["num_recovered"] == 0
