"""DP-SGD through Opacus: per-sample clipping, noise scale, the accountant's epsilon."""

from __future__ import annotations

import math

import pytest
import torch

import gradleak as gl
from gradleak.types import Observation, trainable_parameters

from .helpers import batch, model

DP = {"name": "dpsgd", "max_grad_norm": 0.05, "sample_rate": 0.01, "delta": 1e-5}


def _reference_clipped_mean(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                            c: float) -> list[torch.Tensor]:
    """Loop reference: per-sample gradients, each scaled by min(1, C / (||g|| + 1e-6))."""
    params = [p for _, p in trainable_parameters(net)]
    acc = [torch.zeros_like(p) for p in params]
    norms = []
    for i in range(len(x)):
        loss = torch.nn.functional.cross_entropy(net(x[i:i + 1]), y[i:i + 1])
        grads = torch.autograd.grad(loss, params)
        norm = torch.sqrt(sum((g**2).sum() for g in grads))  # type: ignore[arg-type]
        norms.append(float(norm))
        scale = min(1.0, c / (float(norm) + 1e-6))
        for a, g in zip(acc, grads, strict=True):
            a += scale * g
    assert max(norms) > c  # the check below is about clipping, not a no-op
    return [a / len(x) for a in acc]


def test_per_sample_clipping_matches_a_loop_reference_and_bounds_norms() -> None:
    net = model(0)
    x, y = batch(3, seed=1)
    obs, _ = gl.simulate(net, x, y, defense={**DP, "noise_multiplier": 0.0})
    ref = _reference_clipped_mean(net, x, y, 0.05)
    for got, want in zip(obs.update, ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
    # one sample: the shared gradient is that sample's clipped gradient, norm <= C
    one, _ = gl.simulate(net, x[:1], y[:1], defense={**DP, "noise_multiplier": 0.0})
    norm = math.sqrt(sum(float((u**2).sum()) for u in one.update))
    assert norm <= 0.05 * (1 + 1e-5)


def test_noise_std_is_sigma_c_over_batch_two_sided() -> None:
    net = model(0)
    x, y = batch(4, seed=2)
    clean, _ = gl.simulate(net, x, y, defense={**DP, "noise_multiplier": 0.0})
    for seed in (0, 1):
        noisy, _ = gl.simulate(net, x, y, defense={**DP, "noise_multiplier": 2.0}, seed=seed)
        diff = torch.cat([(a - b).flatten() for a, b in zip(noisy.update, clean.update,
                                                              strict=True)])
        want = 2.0 * 0.05 / 4
        assert diff.numel() > 150
        assert 0.8 * want < float(diff.std()) < 1.2 * want


def test_epsilon_is_opacus_accountant_value_unchanged() -> None:
    from opacus.accountants import RDPAccountant

    net = model(0)
    x, y = batch(2)
    obs, _ = gl.simulate(net, x, y, defense={**DP, "noise_multiplier": 1.1, "steps": 500,
                                             "accountant": "rdp"})
    acc = RDPAccountant()
    for _ in range(500):
        acc.step(noise_multiplier=1.1, sample_rate=0.01)
    report = obs.defense_report
    assert report is not None
    assert report["epsilon"] == acc.get_epsilon(delta=1e-5)
    assert (report["delta"], report["steps"], report["noise_multiplier"]) == (1e-5, 500, 1.1)


def test_target_epsilon_gives_opacus_noise_multiplier_and_at_most_that_epsilon() -> None:
    from opacus.accountants.utils import get_noise_multiplier

    net = model(0)
    x, y = batch(1)
    spec = {**DP, "target_epsilon": 8.0, "steps": 200, "accountant": "gdp"}  # gdp: fast search
    obs, _ = gl.simulate(net, x, y, defense=spec)
    report = obs.defense_report
    assert report is not None
    assert report["noise_multiplier"] == get_noise_multiplier(
        target_epsilon=8.0, target_delta=1e-5, sample_rate=0.01, steps=200, accountant="gdp")
    assert 7.0 < report["epsilon"] <= 8.0


def test_report_saves_and_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    net = gl.models.create("lenet", num_classes=10, in_shape=(3, 16, 16))
    x, y = gl.data.load("sample", size=16, n=1, seed=0)
    obs, _ = gl.simulate(net, x, y, defense={**DP, "noise_multiplier": 1.1, "accountant": "rdp"})
    back = Observation.load(obs.save(tmp_path / "o"))
    assert back.defense_report == obs.defense_report
    assert back.defense == obs.defense


def test_batchnorm_is_fixed_the_opacus_way_and_recorded() -> None:
    net = model(0, bn=True)
    x, y = batch(2)
    obs, _ = gl.simulate(net, x, y, defense={**DP, "noise_multiplier": 1.0,
                                             "accountant": "rdp"})
    report = obs.defense_report
    assert report is not None and report["model_changed"]
    assert report["opacus_fixed"] == ["norm: BatchNorm2d -> GroupNorm"]
    assert isinstance(obs.model.norm, torch.nn.GroupNorm)
    assert obs.model_spec is None
    assert isinstance(net.norm, torch.nn.BatchNorm2d)  # the caller's model is untouched


def test_fedavg_takes_noisy_local_steps() -> None:
    net = model(0)
    x, y = batch(4)
    spec = {**DP, "noise_multiplier": 0.0, "accountant": "rdp"}
    obs, _ = gl.simulate(net, x, y, defense=spec, local_steps=2, local_batch_size=2,
                         local_lr=0.5)
    assert obs.kind == "delta"
    assert obs.defense_report is not None and obs.defense_report["steps"] == 2
    # each step moves by lr * (mean of clipped grads), so the delta is at most 2 * lr * C
    norm = math.sqrt(sum(float((u**2).sum()) for u in obs.update))
    assert 0 < norm <= 2 * 0.5 * 0.05 * (1 + 1e-5)


@pytest.mark.parametrize("bad", [{"noise_multiplier": -1.0}, {"noise_multiplier": 1.0,
                                                               "steps": 0}])
def test_bad_dp_settings(bad: dict) -> None:
    with pytest.raises(gl.errors.ConfigError):
        gl.simulate(model(0), *batch(1), defense={**DP, **bad})


def test_tampered_report_is_refused_on_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    net = gl.models.create("lenet", num_classes=10, in_shape=(3, 16, 16))
    x, y = gl.data.load("sample", size=16, n=1, seed=0)
    obs, _ = gl.simulate(net, x, y, defense={**DP, "noise_multiplier": 1.1, "accountant": "rdp"})
    folder = obs.save(tmp_path / "o")
    meta = json.loads((folder / "meta.json").read_text())
    for bad in ([1, 2], {"epsilon": {"nested": object.__name__, "x": [1e400]}}):
        meta["defense_report"] = bad
        (folder / "meta.json").write_text(json.dumps(meta).replace("Infinity", "1e999"))
        with pytest.raises(gl.errors.DataError, match="defense_report"):
            Observation.load(folder)
