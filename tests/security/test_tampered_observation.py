"""Threat: a saved observation received from someone else has tampered metadata or tensors.

``meta.json`` is checked field by field (:mod:`gradleak.schema`) before anything is built;
the tensors must match the metadata and the model. Each case fails fast with a
``DataError`` / ``ObservationError`` that names the field.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import gradleak as gl
from gradleak.errors import DataError, ObservationError
from gradleak.schema import Limits


def _saved(tmp_path: Path, **kw: Any) -> Path:
    model = gl.models.create("lenet", in_shape=(3, 8, 8), num_classes=4)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    obs, _ = gl.simulate(model, x, torch.tensor([1, 3]), share_labels=True, **kw)
    return obs.save(tmp_path / "obs")


def _edit_meta(folder: Path, **changes: Any) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    for key, value in changes.items():
        if value is KeyError:
            meta.pop(key)
        else:
            meta[key] = value
    (folder / "meta.json").write_text(json.dumps(meta))


def _edit_tensors(folder: Path, **changes: torch.Tensor | None) -> None:
    t = load_file(str(folder / "tensors.safetensors"))
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            t.pop(key)
        else:
            t[key] = value
    save_file(t, str(folder / "tensors.safetensors"))


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("local_steps", 10**9, "local_steps"),  # would unroll 1e9 steps per iteration
        ("local_steps", 1e9, "local_steps"),  # a float where an int belongs
        ("num_classes", "10", "num_classes"),  # a string number
        ("batch_size", True, "batch_size"),  # a bool where an int belongs
        ("train_mode", 1, "train_mode"),
        ("local_lr", float("nan"), "local_lr"),
        ("local_lr", -0.1, "local_lr"),
        ("kind", "gradients", "kind"),
        ("data_shape", [3, 8], "data_shape"),
        ("data_shape", [3, 8, 10**7], "data_shape"),
        ("param_names", "conv1.weight", "param_names"),
        ("loss", "mse", "loss"),
        ("normalization", {"mean": [0.5], "std": [0.2]}, "normalization"),
        ("normalization", {"mean": [0.5] * 3, "std": [0.2, 0.0, 0.2]}, "normalization"),
        ("defense", "x" * 20_000, "defense"),
        ("surprise", 1, "surprise"),
        ("kind", KeyError, "kind"),
    ],
)
def test_tampered_meta_field_is_named(tmp_path: Path, field: str, value: Any,
                                      fragment: str) -> None:
    folder = _saved(tmp_path)
    _edit_meta(folder, **{field: value})
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=fragment):
        gl.Observation.load(folder)
    assert time.perf_counter() - t0 < 2.0


def test_oversized_model_spec_refused_before_allocation(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    spec = {"name": "mlp", "kwargs": {"num_classes": 4, "in_shape": [3, 8, 8], "seed": 0,
                                      "width": 200_000}}  # 4 layers: 80 G parameters
    _edit_meta(folder, model_spec=spec)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="max_parameters"):
        gl.Observation.load(folder)
    assert time.perf_counter() - t0 < 2.0  # sized on the meta device, nothing allocated


def test_very_deep_model_spec_refused_fast(tmp_path: Path) -> None:
    """Few parameters but a million layers: construction is aborted, not run for minutes."""
    folder = _saved(tmp_path)
    spec = {"name": "mlp", "kwargs": {"num_classes": 4, "in_shape": [1, 2, 2], "seed": 0,
                                      "width": 1, "depth": 1_000_000}}
    _edit_meta(folder, model_spec=spec)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="max_modules"):
        gl.Observation.load(folder)
    assert time.perf_counter() - t0 < 10.0  # about 1 s; building it took over 9 minutes


def test_parameter_ceiling_is_explicit_and_raisable(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    with pytest.raises(DataError, match="parameters"):
        gl.Observation.load(folder, limits=Limits(max_parameters=1000))
    assert gl.Observation.load(folder, limits=Limits(max_parameters=10**6)).num_classes == 4
    _edit_meta(folder, kind="delta", local_steps=50)
    with pytest.raises(DataError, match="local_steps"):
        gl.Observation.load(folder, limits=Limits(max_local_steps=10))


@pytest.mark.parametrize(
    "kwargs",
    [{"bogus": 1}, {"depth": "deep"}, {"width": [1] * 5000}, {"in_shape": [3, 8]}],
)
def test_bad_model_spec_kwargs(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    folder = _saved(tmp_path)
    spec = {"name": "mlp", "kwargs": {"num_classes": 4, "in_shape": [3, 8, 8], **kwargs}}
    _edit_meta(folder, model_spec=spec)
    with pytest.raises(DataError, match="model_spec|in_shape|width"):
        gl.Observation.load(folder)


def test_unknown_zoo_model(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    _edit_meta(folder, model_spec={"name": "gpt5", "kwargs": {}})
    with pytest.raises(DataError, match="gpt5"):
        gl.Observation.load(folder)


def test_bool_labels_in_file_refused(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    _edit_tensors(folder, labels=torch.tensor([True, False]))
    with pytest.raises(ObservationError, match="labels"):
        gl.Observation.load(folder)


def test_float64_update_for_float32_model_refused(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    t = load_file(str(folder / "tensors.safetensors"))
    _edit_tensors(folder, update__body__0__weight=t["update.body.0.weight"].double())
    with pytest.raises(ObservationError, match="float64"):
        gl.Observation.load(folder)


def test_nan_model_weight_in_file_refused(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    t = load_file(str(folder / "tensors.safetensors"))
    w = t["model.body.0.weight"].clone()
    w[0, 0, 0, 0] = float("nan")
    _edit_tensors(folder, model__body__0__weight=w)
    with pytest.raises(ObservationError, match="body.0.weight"):
        gl.Observation.load(folder)


def test_missing_and_extra_tensors(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    _edit_tensors(folder, update__fc__bias=None)
    with pytest.raises(DataError, match="lacks"):
        gl.Observation.load(folder)
    folder = _saved(tmp_path)
    _edit_tensors(folder, payload=torch.zeros(3))
    with pytest.raises(DataError, match="unexpected"):
        gl.Observation.load(folder)


def test_truncated_tensor_file(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    path = folder / "tensors.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="corrupt"):
        gl.Observation.load(folder)


@pytest.mark.parametrize("text", ["[1, 2]", "{", "\xff\xfe", '{"format": 1e999999}'])
def test_meta_not_an_object(tmp_path: Path, text: str) -> None:
    folder = _saved(tmp_path)
    (folder / "meta.json").write_bytes(text.encode("latin1"))
    with pytest.raises(DataError):
        gl.Observation.load(folder)


def test_valid_delta_roundtrip_still_loads(tmp_path: Path) -> None:
    folder = _saved(tmp_path, local_steps=3, local_lr=0.05)
    back = gl.Observation.load(folder)
    assert back.kind == "delta" and back.local_steps == 3 and back.local_lr == 0.05


WEIRD = [None, "x", "7", -1, 0, 10**30, 1e308, float("nan"), True, [], [1, "a"], {}, {"a": 1}]


def test_every_meta_field_with_every_weird_value(tmp_path: Path) -> None:
    """A small deterministic fuzz: only gradleak's own errors may come out, never a raw one."""
    from gradleak.errors import GradleakError

    folder = _saved(tmp_path, normalization=((0.5,) * 3, (0.25,) * 3))
    pristine = json.loads((folder / "meta.json").read_text())
    variants = [{**pristine, field: value} for field in pristine for value in WEIRD]
    for outer, inner in (("model_spec", "kwargs"), ("normalization", None)):
        holder = pristine[outer][inner] if inner else pristine[outer]
        for key in holder:
            for value in WEIRD:
                meta = json.loads(json.dumps(pristine))
                (meta[outer][inner] if inner else meta[outer])[key] = value
                variants.append(meta)
    escaped = []
    for meta in variants:
        (folder / "meta.json").write_text(json.dumps(meta))
        try:
            gl.Observation.load(folder)
        except GradleakError:
            continue
        except Exception as exc:  # noqa: BLE001  (the point of the test)
            escaped.append((meta, repr(exc)))
    assert not escaped, escaped[:3]
