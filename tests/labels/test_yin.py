"""GradInversion's label restoration (``yin``): exact on constructed gradients, clear refusals."""

import warnings

import pytest
import torch

import gradleak as gl
from gradleak.errors import ThreatModelError
from gradleak.labels.yin import YinAssumptionWarning, YinLabels

from .helpers import linear_model, observe, one_hot_images


def test_constructed_gradient_gives_exact_unique_labels() -> None:
    # uniform softmax (zero weights), disjoint one-pixel features: a present class has a row
    # minimum of (1/K - 1)/B < 0, an absent class has only entries >= 0
    k, b = 10, 4
    x, y = one_hot_images(b, 16), torch.tensor([7, 1, 4, 9])
    obs = observe(linear_model(16, k), x, y)
    assert gl.recover_labels(obs, strategy="yin").tolist() == [1, 4, 7, 9]
    minima = YinLabels().scores(obs)
    torch.testing.assert_close(minima[y], torch.full((b,), (1 / k - 1) / b, dtype=torch.float64))
    assert bool((minima[[0, 2, 3, 5, 6, 8]] >= 0).all())


def test_relu_network_recovers_all_labels_at_batch_8() -> None:
    x, y = gl.data.load("sample", size=32, n=8, seed=3, unique_labels=True)
    for name, kw in [("mlp", {"depth": 2, "width": 256}), ("convnet", {"width": 8})]:
        obs = observe(gl.models.create(name, **kw), x, y)
        assert gl.recover_labels(obs, strategy="yin").tolist() == sorted(y.tolist()), name


def test_one_step_fedavg_delta_is_exact() -> None:
    x, y = one_hot_images(3, 12), torch.tensor([2, 0, 5])
    model = linear_model(12, 6)
    obs = observe(model, x, y, local_steps=1, local_batch_size=3, local_lr=0.5)
    assert obs.kind == "delta"
    assert gl.recover_labels(obs, strategy="yin").tolist() == [0, 2, 5]


def test_refusals_name_the_missing_assumption() -> None:
    x, y = one_hot_images(3, 12), torch.tensor([2, 0, 5])
    model = linear_model(12, 6)
    with pytest.raises(ThreatModelError, match="batch size"):
        gl.recover_labels(observe(model, x, y, share_batch_size=False), strategy="yin")
    with pytest.raises(ThreatModelError, match="unique labels"):
        gl.recover_labels(observe(linear_model(12, 2), x, torch.tensor([0, 1, 1])),
                          strategy="yin")
    with pytest.raises(ThreatModelError, match="approximate_fedavg"):
        gl.recover_labels(observe(model, x, y, local_steps=3), strategy="yin")
    tanh = gl.models.create("mlp", depth=2, width=32, activation="tanh", in_shape=(1, 1, 12),
                            num_classes=6)
    obs = observe(tanh, x, y)
    with pytest.raises(ThreatModelError, match="non-negative"):
        gl.recover_labels(obs, strategy="yin")
    assert len(gl.recover_labels(obs, strategy="yin", check_assumptions=False)) == 3


def test_multi_step_fedavg_with_approximation() -> None:
    x, y = one_hot_images(3, 12), torch.tensor([2, 0, 5])
    obs = observe(linear_model(12, 6), x, y, local_steps=2, local_lr=0.01)
    labels = gl.recover_labels(obs, strategy="yin", approximate_fedavg=True)
    assert labels.tolist() == [0, 2, 5]


def test_confident_sigmoid_lenet_is_detected_and_falls_back() -> None:
    # DLG's sigmoid LeNet puts most softmax mass on one class: the sign rule picks that class
    # on most batches. yin must say so (warning) and return the fallback's (correct) labels.
    warned = 0
    for seed in range(5):
        torch.manual_seed(seed)
        model = gl.models.create("lenet")
        x, y = gl.data.load("sample", size=32, n=4, seed=seed, unique_labels=True)
        obs = observe(model, x, y)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            labels = gl.recover_labels(obs, strategy="yin")
        warned += any(issubclass(w.category, YinAssumptionWarning) for w in caught)
        assert labels.tolist() == sorted(y.tolist()), seed
    assert warned >= 3
    torch.manual_seed(0)
    x, y = gl.data.load("sample", size=32, n=4, seed=0, unique_labels=True)
    with pytest.raises(ThreatModelError, match="not identified by the sign rule"):
        gl.recover_labels(observe(gl.models.create("lenet"), x, y), strategy="yin",
                          fallback=None)
