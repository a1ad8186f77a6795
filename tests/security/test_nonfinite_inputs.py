"""Threat: silent wrong results from NaN/inf, bools, strings or mixed precision in inputs.

Each bad value gets a clear error naming the field instead of a run that quietly computes
garbage (``langevin=nan`` used to pass ``langevin < 0``; ``True`` labels became class 1).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch

import gradleak as gl
from gradleak.errors import ConfigError, ObservationError


def _batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    model = gl.models.create("lenet", in_shape=(3, 8, 8), num_classes=4)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return model, x, torch.tensor([0, 3])


@pytest.fixture(scope="module")
def obs() -> gl.Observation:
    model, x, y = _batch()
    return gl.simulate(model, x, y, share_labels=True)[0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr", math.nan), ("lr", math.inf), ("lr", -0.1), ("lr", "0.1"), ("lr", True),
        ("langevin", math.nan), ("langevin", -1.0), ("langevin", math.inf),
        ("layer_weights", (1.0, math.nan)), ("layer_weights", (1.0, math.inf)),
        ("iterations", True), ("iterations", 10.0), ("restarts", "2"),
    ],
)
def test_attack_settings(obs: gl.Observation, field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        gl.reconstruct(obs, attack="ig", **{"iterations": 1, field: value})


@pytest.mark.parametrize("weight", [math.nan, math.inf, -0.1, "0.1", True])
@pytest.mark.parametrize("form", ["plain", "mapping"])
def test_prior_weights(obs: gl.Observation, weight: Any, form: str) -> None:
    spec = {"tv": weight} if form == "plain" else {"tv": {"weight": weight}}
    with pytest.raises(ConfigError, match=r"priors\.tv\.weight"):
        gl.reconstruct(obs, attack="ig", iterations=1, priors=spec)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"local_lr": math.nan}, "local_lr"),
        ({"local_lr": -0.1}, "local_lr"),
        ({"local_lr": math.inf}, "local_lr"),
        ({"local_lr": "0.1"}, "local_lr"),
        ({"local_steps": True}, "local_steps"),
        ({"local_steps": 2.0}, "local_steps"),
        ({"local_batch_size": 0}, "local_batch_size"),
    ],
)
def test_simulate_settings(kwargs: dict[str, Any], fragment: str) -> None:
    model, x, y = _batch()
    with pytest.raises(ConfigError, match=fragment):
        gl.simulate(model, x, y, **kwargs)


@pytest.mark.parametrize(
    ("mean", "std", "fragment"),
    [((0.5,) * 3, (0.2, math.nan, 0.2), r"std\[1\]"), ((0.5, math.inf, 0.5), (0.2,) * 3,
                                                      r"mean\[1\]"),
     ((0.5,) * 3, ("0.2", 0.2, 0.2), r"std\[0\]"), ((0.5,) * 3, (0.2, 0.2, 0.0), r"std\[2\]")],
)
def test_normalization_values(mean: tuple[Any, ...], std: tuple[Any, ...],
                              fragment: str) -> None:
    model, x, y = _batch()
    with pytest.raises(ObservationError, match=fragment):
        gl.simulate(model, x, y, normalization=(mean, std))


def test_bool_labels_refused() -> None:
    model, x, _ = _batch()
    with pytest.raises(ObservationError, match="torch.bool"):
        gl.simulate(model, x, torch.tensor([True, False]))


def test_nan_model_weights_refused_before_work() -> None:
    model, x, y = _batch()
    with torch.no_grad():
        model.fc.bias[1] = math.nan
    with pytest.raises(ObservationError, match="fc.bias"):
        gl.simulate(model, x, y)


def test_nan_bn_buffer_refused(obs: gl.Observation) -> None:
    model = gl.models.create("convnet_small", in_shape=(3, 8, 8), num_classes=4)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_var.fill_(math.inf)
    with pytest.raises(ObservationError, match="running_var"):
        gl.simulate(model, torch.rand(1, 3, 8, 8), torch.tensor([1]))


def _replace(obs: gl.Observation, **changes: Any) -> gl.Observation:
    return gl.Observation(**{**{f.name: getattr(obs, f.name)
                                for f in dataclasses.fields(obs)}, **changes})


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"num_classes": "4"}, "num_classes"),
        ({"num_classes": True}, "num_classes"),
        ({"batch_size": 2.0}, "batch_size"),
        ({"local_lr": math.nan}, "local_lr"),
        ({"local_steps": 0}, "local_steps"),
        ({"train_mode": 1}, "train_mode"),
        ({"kind": "grad"}, "kind"),
        ({"data_shape": (3, 8, True)}, "data_shape"),
        ({"labels": torch.tensor([True, False])}, "labels"),
    ],
)
def test_observation_fields(obs: gl.Observation, changes: dict[str, Any],
                            fragment: str) -> None:
    with pytest.raises(ObservationError, match=fragment):
        _replace(obs, **changes)


def test_float64_update_with_float32_model(obs: gl.Observation) -> None:
    with pytest.raises(ObservationError, match="float64"):
        _replace(obs, update=tuple(u.double() for u in obs.update))


def test_mismatched_model_and_gradients(obs: gl.Observation) -> None:
    other = gl.models.create("lenet", in_shape=(3, 8, 8), num_classes=5)
    with pytest.raises(ObservationError, match="pass the model"):
        _replace(obs, model=other)
