"""Observation validation and pickle-free persistence."""

import json

import pytest
import torch

import gradleak as gl
from gradleak.errors import DataError, ObservationError


def _obs(**kw):
    model = gl.models.create("lenet", in_shape=(3, 16, 16), num_classes=5)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    return gl.simulate(model, x, torch.tensor([1, 4]), **kw)[0]


def test_roundtrip_zoo_model(tmp_path) -> None:
    obs = _obs(share_labels=True, normalization=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    obs.save(tmp_path / "o")
    back = gl.Observation.load(tmp_path / "o")
    assert back.param_names == obs.param_names and back.data_shape == obs.data_shape
    for a, b in zip(back.update, obs.update, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(back.labels, obs.labels)
    assert back.normalization == obs.normalization
    pairs = zip(back.model.state_dict().items(), obs.model.state_dict().items(), strict=True)
    for (ka, va), (kb, vb) in pairs:
        assert ka == kb and torch.equal(va, vb)
    assert not list(tmp_path.glob("o/*.pt")) and not list(tmp_path.glob("o/*.pkl"))


def test_custom_model_needs_to_be_passed(tmp_path) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    obs, _ = gl.simulate(model, torch.rand(1, 3, 2, 2), torch.tensor([2]))
    obs.save(tmp_path / "c")
    with pytest.raises(DataError, match="pass model="):
        gl.Observation.load(tmp_path / "c")
    fresh = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    back = gl.Observation.load(tmp_path / "c", model=fresh)
    assert torch.equal(back.model[1].weight, model[1].weight)
    with pytest.raises(ObservationError, match="do not fit"):
        gl.Observation.load(tmp_path / "c",
                            model=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4)))


def test_missing_and_corrupt_files(tmp_path) -> None:
    with pytest.raises(DataError, match="not a saved observation"):
        gl.Observation.load(tmp_path / "nothing")
    _obs().save(tmp_path / "o")
    (tmp_path / "o" / "tensors.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupt"):
        gl.Observation.load(tmp_path / "o")
    _obs().save(tmp_path / "p")
    (tmp_path / "p" / "meta.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match="not a gradleak observation"):
        gl.Observation.load(tmp_path / "p")


def test_mismatched_model_and_update_rejected() -> None:
    obs = _obs()
    other = gl.models.create("mlp", depth=2, width=8, in_shape=(3, 16, 16), num_classes=5)
    with pytest.raises(ObservationError, match="pass the model the gradients were computed on"):
        gl.Observation(**{**obs.__dict__, "model": other})
    bad = list(obs.update)
    bad[0] = torch.full_like(bad[0], float("nan"))
    with pytest.raises(ObservationError, match="NaN"):
        gl.Observation(**{**obs.__dict__, "update": tuple(bad)})


def test_gradients_property_refuses_delta() -> None:
    obs = _obs(local_steps=2)
    with pytest.raises(ObservationError, match="delta"):
        _ = obs.gradients
