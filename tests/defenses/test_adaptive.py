"""Adaptive surrogates equal their defense on the forward pass and pass gradients."""

from __future__ import annotations

import pytest
import torch

import gradleak as gl
from gradleak.defenses.adaptive import build_surrogate
from gradleak.defenses.functional import flatten

from .helpers import batch, model

SHAPES = [(4, 3), (5,), (2, 2, 2)]


def _update(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) for s in SHAPES]


@pytest.mark.parametrize("spec", [
    "clip(max_norm=0.7)", "prune(ratio=0.6)", "sign()", "quantize(bits=3, rounding='nearest')",
    "noise(sigma=0.0)", "laplace(scale=0.0)",
])
def test_surrogate_equals_defense_forward_per_row(spec: str) -> None:
    surrogate = build_surrogate(spec)
    defense = gl.defenses.resolve(spec)
    assert surrogate is not None and defense is not None
    rows = [_update(seed) for seed in range(3)]
    flat = torch.cat([flatten(r)[0] for r in rows])
    sizes = [u.numel() for u in rows[0]]
    out = surrogate(flat, sizes)
    for r, row in enumerate(rows):
        want = flatten(defense.apply(row, generator=torch.Generator()))[0][0]
        assert torch.equal(out[r], want), spec


@pytest.mark.parametrize("spec", ["sign()", "quantize(bits=2)", "clip(max_norm=0.5)",
                                  "prune(ratio=0.5)"])
def test_surrogates_pass_gradients(spec: str) -> None:
    surrogate = build_surrogate(spec)
    assert surrogate is not None
    flat = torch.randn(2, 12, requires_grad=True)
    surrogate(flat, [12]).sum().backward()
    assert flat.grad is not None and float(flat.grad.abs().sum()) > 0
    if spec.startswith(("sign", "quantize")):  # straight-through: identity backward
        assert torch.equal(flat.grad, torch.ones_like(flat))


def test_stochastic_quantisation_surrogate_is_its_expectation() -> None:
    """The mean of many stochastic roundings tends to the surrogate (the identity), within
    a band of a few standard errors; a single draw is within one level of it."""
    u = _update(0)
    flat, sizes = flatten(u)
    surrogate = build_surrogate("quantize(bits=3)")
    assert surrogate is not None
    target = surrogate(flat, sizes)
    assert torch.equal(target, flat)
    q = gl.defenses.create("quantize", bits=3)
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([flatten(q.apply(u, generator=gen))[0] for _ in range(400)])
    step = 2 * max(float(t.abs().max()) for t in u) / 7
    assert float((draws[0] - target).abs().max()) <= step * (1 + 1e-6)
    # each draw's error is bounded by one step, so its standard deviation is <= step / 2
    err = (draws.mean(0) - target).abs().max()
    assert float(err) <= 4 * (step / 2) / 400**0.5
    assert float((draws[0] - target).abs().max()) > float(err)  # a draw alone is far off


def test_observed_mask_surrogates_reproduce_the_observation() -> None:
    net = model(0)
    x, y = batch(1)
    for spec in ({"name": "sparsify", "ratio": 0.7}, {"name": "soteria", "ratio": 0.5},
                 {"name": "sparsify", "ratio": 0.5, "rescale": True}):
        obs, _ = gl.simulate(net, x, y, defense=spec, seed=2)
        clean, _ = gl.simulate(net, x, y)
        surrogate = build_surrogate(obs.defense, observation=obs)
        assert surrogate is not None
        flat, sizes = flatten(list(clean.update))
        torch.testing.assert_close(surrogate(flat, sizes), flatten(list(obs.update))[0])
        with pytest.raises(gl.errors.ThreatModelError, match="observation"):
            build_surrogate(obs.defense)


def test_dpsgd_surrogate_is_the_expected_clipped_gradient() -> None:
    net = model(0)
    x, y = batch(1)
    spec = {"name": "dpsgd", "noise_multiplier": 0.0, "max_grad_norm": 0.05,
            "accountant": "rdp"}
    obs, _ = gl.simulate(net, x, y, defense=spec)
    clean, _ = gl.simulate(net, x, y)
    surrogate = build_surrogate(obs.defense, observation=obs)
    assert surrogate is not None
    flat, sizes = flatten(list(clean.update))
    torch.testing.assert_close(surrogate(flat, sizes), flatten(list(obs.update))[0],
                               rtol=1e-4, atol=1e-8)


def test_no_surrogate_for_data_model_and_aggregation_defenses() -> None:
    for spec in (None, "mixup()", "instahide()", "precode()", "secagg(clients=2)"):
        assert build_surrogate(spec) is None
    with pytest.raises(gl.errors.ThreatModelError, match="flattened"):
        build_surrogate("sign()")(torch.zeros(2, 5), [4])  # type: ignore[misc]
