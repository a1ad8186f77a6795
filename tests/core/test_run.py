"""gradleak.run: the one simulate -> reconstruct -> evaluate -> artefacts function."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import gradleak as gl
from gradleak.errors import ConfigError, RegistryError


def _spec(**kw: Any) -> gl.RunSpec:
    base: dict[str, Any] = {"model": "mlp", "model_kwargs": {"width": 16, "depth": 2},
                            "size": 8, "n": 1, "attack": "ig",
                            "overrides": {"iterations": 3}, "share_labels": True}
    return gl.RunSpec(**(base | kw))


def test_run_equals_the_glue_written_by_hand() -> None:
    res = gl.run(_spec(seed=3, model_seed=7))
    images, labels = gl.data.load("sample", size=8, n=1, seed=3)
    model = gl.models.create("mlp", num_classes=10, in_shape=(3, 8, 8), width=16, depth=2,
                             seed=7)
    obs, truth = gl.simulate(model, images, labels, share_labels=True, seed=3)
    rec = gl.reconstruct(obs, attack="ig", seed=3, iterations=3)
    scores = gl.evaluate(rec, truth)
    assert torch.equal(res.reconstruction.images, rec.images)
    assert res.psnr == pytest.approx(float(scores["psnr"]), abs=0)
    assert res.index is None and res.wall_time > 0


def test_run_writes_the_run_folder(tmp_path: Path) -> None:
    res = gl.run(_spec(model="mlp", attack="bias", overrides={}, out=tmp_path / "r",
                       notes={"purpose": "test"}))
    assert res.psnr > 100  # the bias attack is exact at batch size 1 (float32 rounding)
    assert res.index == tmp_path / "r" / "index.html" and res.index.is_file()
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["run"]["attack"] == "bias" and config["run"]["purpose"] == "test"
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["psnr"] == pytest.approx(res.psnr)
    loaded = gl.report.load_run(tmp_path / "r")
    assert torch.equal(loaded.rec.images, res.reconstruction.images)


def test_run_takes_tensors_and_a_custom_module() -> None:
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1])
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 3))
    res = gl.run(gl.RunSpec(model=net, images=x, labels=y, attack="ig",
                            overrides={"iterations": 2}, share_labels=True))
    assert res.reconstruction.images.shape == x.shape
    assert res.config["model"] == "Sequential" and res.config["data"] == "tensors"


def test_run_sets_threads_only_while_it_runs() -> None:
    before = torch.get_num_threads()
    gl.run(_spec(overrides={"iterations": 1}, threads=1))
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(("kw", "error", "message"), [
    ({"model": "nope"}, RegistryError, "nope"),
    ({"attack": "nope"}, RegistryError, "nope"),
    ({"overrides": {"iterationz": 3}}, ConfigError, "iterationz"),
    ({"overrides": {"lr.x": 3}}, ConfigError, "not a mapping"),
    ({"images": torch.rand(1, 3, 8, 8)}, ConfigError, "images and labels"),
    ({"n": 0}, ConfigError, "batch size"),
    ({"local_steps": 0}, ConfigError, "local_steps"),
    ({"local_lr": float("nan")}, ConfigError, "local_lr"),
    ({"threads": 0}, ConfigError, "threads"),
    ({"model": 3}, ConfigError, "nn.Module"),
])
def test_bad_specs_fail_when_built(kw: dict[str, Any], error: type[Exception],
                                   message: str) -> None:
    with pytest.raises(error, match=message):
        _spec(**kw)


def test_unknown_data_is_a_data_error() -> None:
    with pytest.raises(gl.DataError, match="unknown dataset"):
        gl.run(_spec(data="no-such-set"))
