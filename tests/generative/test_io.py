"""Prior files: bit-exact round trip, and clear errors for corrupt or mismatched files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import gradleak as gl
from gradleak.errors import ConfigError, DataError
from gradleak.generative import GenerativePrior
from gradleak.generative.io import FORMAT


def test_round_trip_is_bit_exact(tiny_dcgan: GenerativePrior, tmp_path: Path) -> None:
    path = tiny_dcgan.save(tmp_path / "prior")
    assert path.name == "prior.safetensors"
    back = gl.generative.load(path)
    a, b = tiny_dcgan.state_dict(), back.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert back.metadata == json.loads(json.dumps(tiny_dcgan.metadata))
    assert (back.kind, back.latent_dim, back.image_size, back.channels) == ("dcgan", 6, 8, 1)
    z = torch.randn(4, 6)
    assert torch.equal(back(z), tiny_dcgan(z))
    assert not back.training


def _tamper(src: Path, dst: Path, *, tensors: Callable[[dict], dict] | None = None,
            meta: Callable[[dict], dict] | None = None, raw: str | None = None) -> Path:
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as f:
        header = dict(f.metadata())
    t = load_file(str(src))
    if tensors is not None:
        t = tensors(t)
    if meta is not None:
        header["gradleak"] = json.dumps(meta(json.loads(header["gradleak"])))
    if raw is not None:
        header["gradleak"] = raw
    save_file(t, str(dst), metadata=header)
    return dst


def _set(key: str, value: object) -> Callable[[dict], dict]:
    return lambda m: {**m, key: value}


def _set_arch(key: str, value: object) -> Callable[[dict], dict]:
    return lambda m: {**m, "architecture": {**m["architecture"], key: value}}


def _drop_first(t: dict) -> dict:
    return {k: v for i, (k, v) in enumerate(sorted(t.items())) if i}


def _nan_first(t: dict) -> dict:
    k = sorted(t)[0]
    return {**t, k: torch.full_like(t[k], float("nan"))}


def _reshape_first(t: dict) -> dict:
    k = sorted(t)[0]
    return {**t, k: torch.zeros(3, 3)}


def _float64(t: dict) -> dict:
    return {k: v.double() for k, v in t.items()}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(raw="{not json"), "corrupt JSON"),
        (dict(raw="[1, 2]"), "JSON object"),
        (dict(meta=_set("kind", "diffusion")), "unknown prior kind"),
        (dict(meta=_set("latent_dim", 10**6)), "latent_dim"),
        (dict(meta=_set("image_size", "32")), "image_size"),
        (dict(meta=_set("channels", 0)), "channels"),
        (dict(meta=_set("value_range", [-1, 1])), "value_range"),
        (dict(meta=_set_arch("width", 4096)), "width"),
        (dict(meta=_set_arch("image_size", 16)), "contradicts"),
        (dict(meta=_set_arch("norm", "batch")), "contradicts"),
        (dict(meta=lambda m: {k: v for k, v in m.items() if k != "architecture"}),
         "architecture"),
        (dict(tensors=_drop_first), "missing"),
        (dict(tensors=lambda t: {**t, "extra.weight": torch.zeros(1)}), "unexpected"),
        (dict(tensors=_reshape_first), "expected float32"),
        (dict(tensors=_float64), "expected float32"),
        (dict(tensors=_nan_first), "NaN"),
    ],
)
def test_tampered_files_are_refused(
    tiny_dcgan: GenerativePrior, tmp_path: Path, change: dict, match: str
) -> None:
    good = tiny_dcgan.save(tmp_path / "good.safetensors")
    bad = _tamper(good, tmp_path / "bad.safetensors", **change)
    with pytest.raises(DataError, match=match):
        gl.generative.load(bad)


def test_not_a_prior_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match="not a readable safetensors"):
        gl.generative.load(junk)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "something/1"})
    with pytest.raises(DataError, match="not a gradleak generative prior"):
        gl.generative.load(other)
    with pytest.raises(DataError, match="no prior file"):
        gl.generative.load(tmp_path / "missing.safetensors")
    with pytest.raises(DataError, match="shipped"):
        gl.generative.load("no-such-prior")


def test_wrong_kind_is_refused(tiny_vae: GenerativePrior, tmp_path: Path) -> None:
    path = tiny_vae.save(tmp_path / "vae.safetensors")
    assert gl.generative.load(path, kind="vae").kind == "vae"
    with pytest.raises(ConfigError, match="not the 'dcgan'"):
        gl.generative.load(path, kind="dcgan")


class _UserGenerator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 48), nn.Unflatten(1, (3, 4, 4)), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def test_custom_prior_round_trip_needs_its_module(tmp_path: Path) -> None:
    torch.manual_seed(0)
    G = gl.generative.wrap(_UserGenerator(), latent_dim=3, image_size=4, channels=3,
                           name="mine")
    path = G.save(tmp_path / "custom.safetensors")
    with pytest.raises(ConfigError, match="module="):
        gl.generative.load(path)
    back = gl.generative.load(path, module=_UserGenerator())
    z = torch.randn(2, 3)
    assert torch.equal(back(z), G(z)) and back.metadata["name"] == "mine"
    with pytest.raises(DataError, match="missing|unexpected|expected"):
        gl.generative.load(path, module=nn.Sequential(nn.Linear(3, 48),
                                                      nn.Unflatten(1, (3, 4, 4)), nn.Sigmoid()))


def test_format_constant_is_in_the_header(tiny_vae: GenerativePrior, tmp_path: Path) -> None:
    from safetensors import safe_open

    path = tiny_vae.save(tmp_path / "v.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["format"] == FORMAT
