"""Inverter checkpoints: round trip, refusal for another model/parameters/setting, tampering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import gradleak as gl
from gradleak.errors import ConfigError, DataError, ThreatModelError

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def trained() -> tuple[torch.nn.Module, gl.learned.Inverter]:
    model = gl.models.create("lenet", in_shape=SHAPE)
    aux = torch.rand(40, *SHAPE, generator=torch.Generator().manual_seed(0))
    return model, gl.learned.train(model, aux, hidden=32, hash_dim=256, epochs=1)


def observe(model: torch.nn.Module, **kwargs: object) -> gl.Observation:
    x = torch.rand(int(kwargs.pop("n", 1)), *SHAPE, generator=torch.Generator().manual_seed(1))  # type: ignore[call-overload]
    obs, _ = gl.simulate(model, x, torch.zeros(len(x), dtype=torch.long), **kwargs)  # type: ignore[arg-type]
    return obs


def test_save_load_round_trip(tmp_path: Path, trained: tuple) -> None:
    model, inv = trained
    path = inv.save(tmp_path / "inv.safetensors")
    back = gl.learned.load(path, model=model)
    obs = observe(model)
    assert back.spec == inv.spec
    assert torch.equal(back.invert(obs.update), inv.invert(obs.update))
    rec = gl.reconstruct(obs, attack="lti", inverter=back)
    assert rec.images.shape == (1, *SHAPE) and rec.extras["head"] == "mlp"


def test_checkpoint_for_another_model_or_parameters_is_refused(tmp_path: Path,
                                                               trained: tuple) -> None:
    _, inv = trained
    path = inv.save(tmp_path / "inv.safetensors")
    other_params = gl.models.create("lenet", in_shape=SHAPE, seed=1)
    other_arch = gl.models.create("lenet5", in_shape=(1, 32, 32))
    with pytest.raises(ThreatModelError, match="other parameters"):
        gl.learned.load(path, model=other_params)
    with pytest.raises(ThreatModelError, match="another model architecture"):
        gl.learned.load(path, model=other_arch)
    with pytest.raises(ThreatModelError, match="other parameters"):
        gl.reconstruct(observe(other_params), attack="lti", inverter=inv)


def test_observation_of_another_setting_is_refused(trained: tuple) -> None:
    model, inv = trained
    with pytest.raises(ThreatModelError, match="batch size 1"):
        gl.reconstruct(observe(model, n=2), attack="lti", inverter=inv)
    with pytest.raises(ThreatModelError, match="defense"):
        gl.reconstruct(observe(model, defense="prune"), attack="lti", inverter=inv)
    with pytest.raises(ThreatModelError, match="batch size"):
        gl.reconstruct(observe(model, share_batch_size=False), attack="lti", inverter=inv)
    with pytest.raises(ConfigError, match="inverter"):
        gl.reconstruct(observe(model), attack="lti")
    with pytest.raises(ConfigError):
        gl.reconstruct(observe(model), attack="lti", inverter=inv, iterations=3)


def test_missing_corrupt_or_tampered_files_are_refused(tmp_path: Path, trained: tuple) -> None:
    model, inv = trained
    with pytest.raises(DataError, match="no inverter"):
        gl.learned.load(tmp_path / "absent.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(DataError):
        gl.learned.load(junk)
    path = inv.save(tmp_path / "inv.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118

    def rewrite(new_meta: dict[str, str], new_tensors: dict[str, torch.Tensor]) -> Path:
        out = tmp_path / "tampered.safetensors"
        save_file(new_tensors, str(out), metadata=new_meta)
        return out

    spec = json.loads(meta["spec"])
    spec["layout"]["batch_size"] = "four"
    with pytest.raises(DataError, match="batch_size"):
        gl.learned.load(rewrite({**meta, "spec": json.dumps(spec)}, tensors))
    with pytest.raises(DataError, match="not a gradleak inverter"):
        gl.learned.load(rewrite({**meta, "format": "other"}, tensors))
    bad = dict(tensors)
    key = next(k for k in bad if k.endswith("weight"))
    bad[key] = bad[key][:1]
    with pytest.raises(DataError, match="shape"):
        gl.learned.load(rewrite(meta, bad))
    hashed = {k: (v.clone().fill_(10**6) if k.endswith("hash.index") else v)
              for k, v in tensors.items()}
    with pytest.raises(DataError, match="hashing"):
        gl.learned.load(rewrite(meta, hashed))
