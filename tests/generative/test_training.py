"""Training a prior: the loss falls, seeds determine everything, resume is bit-exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import gradleak as gl
from gradleak.errors import ConfigError, RegistryError
from gradleak.generative import GenerativePrior, TrainStatus
from gradleak.generative.checkpoint import checkpoint_path

SMALL = dict(image_size=8, batch_size=32, latent_dim=6, width=16)


def _same_weights(a: GenerativePrior, b: GenerativePrior) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_vae_loss_falls(digits8: torch.Tensor) -> None:
    G = gl.generative.train(digits8, kind="vae", epochs=8, seed=0, lr=3e-3, **SMALL)
    history = G.metadata["history"]
    assert len(history) == 8
    assert history[-1]["recon_mse"] < 0.7 * history[0]["recon_mse"]
    assert history[-1]["loss"] < history[0]["loss"]


def test_dcgan_trains_and_is_a_valid_prior(tiny_dcgan: GenerativePrior) -> None:
    G = tiny_dcgan
    assert G.kind == "dcgan" and not G.training
    assert not any(p.requires_grad for p in G.parameters())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in G.modules())  # folded
    x = G(G.sample_latent(5, torch.Generator().manual_seed(1)))
    assert x.shape == (5, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert float(x.std(dim=0).mean()) > 1e-3  # different latents, different images
    d, g = G.metadata["history"][0]["d_loss"], G.metadata["history"][0]["g_loss"]
    assert 0 < d < 5 and 0 < g < 10


def test_deterministic_given_seed_and_global_rng_untouched(digits8: torch.Tensor) -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = gl.generative.train(digits8[:64], kind="dcgan", epochs=1, seed=3, **SMALL)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = gl.generative.train(digits8[:64], kind="dcgan", epochs=1, seed=3, **SMALL)
    c = gl.generative.train(digits8[:64], kind="dcgan", epochs=1, seed=4, **SMALL)
    assert _same_weights(a, b) and not _same_weights(a, c)
    assert torch.get_num_threads() >= 1


@pytest.mark.parametrize("kind", ["dcgan", "vae"])
def test_resume_is_bit_exact(kind: str, digits8: torch.Tensor, tmp_path: Path) -> None:
    x = digits8[:64]
    straight = gl.generative.train(x, kind=kind, epochs=2, seed=0, **SMALL)
    ckpt = checkpoint_path(tmp_path / "p.safetensors")
    gl.generative.train(x, kind=kind, epochs=1, seed=0, checkpoint=ckpt, **SMALL)
    assert ckpt.is_file()
    resumed = gl.generative.train(x, kind=kind, epochs=2, seed=0, checkpoint=ckpt, resume=True,
                                  **SMALL)
    assert _same_weights(straight, resumed)
    assert resumed.metadata["history"] == straight.metadata["history"]
    with pytest.raises(ConfigError, match="other settings"):
        gl.generative.train(x, kind=kind, epochs=2, seed=1, checkpoint=ckpt, resume=True,
                            **SMALL)


def test_callback_sees_every_step_and_epoch_snapshots(digits8: torch.Tensor) -> None:
    seen: list[TrainStatus] = []
    gl.generative.train(digits8[:64], kind="vae", epochs=2, seed=0, callback=seen.append,
                        **SMALL)
    assert [(s.epoch, s.step) for s in seen] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert [s.end_of_epoch for s in seen] == [False, True, False, True]
    snap = seen[-1].snapshot()
    assert isinstance(snap, GenerativePrior) and snap.image_size == 8
    assert set(seen[0].losses) == {"loss", "recon_mse", "kl"}


def test_trains_from_a_data_spec() -> None:
    G = gl.generative.train("faces", kind="vae", epochs=1, seed=0, **SMALL)
    assert G.channels == 1 and "faces" in G.metadata["data"]
    assert G.metadata["num_images"] == 80  # the train split only


def test_bad_inputs_are_refused(digits8: torch.Tensor) -> None:
    with pytest.raises(RegistryError, match="prior kind"):
        gl.generative.train(digits8, kind="gan9", epochs=1, **SMALL)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        gl.generative.train(digits8 * 3, kind="vae", epochs=1, **SMALL)
    with pytest.raises(ConfigError, match="image_size"):
        gl.generative.train(digits8, kind="vae", epochs=1, image_size=24, batch_size=32)
    with pytest.raises(ConfigError, match="tensor"):
        gl.generative.train(digits8[0], kind="vae", epochs=1, **SMALL)
    with pytest.raises(ConfigError, match="malformed"):
        gl.generative.train("mnist:", kind="vae", epochs=1, **SMALL)
