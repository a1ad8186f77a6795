"""MixUp / InstaHide batches, and secure aggregation equal to the clients' sum."""

from __future__ import annotations

import pytest
import torch

import gradleak as gl
from gradleak.defenses.mixing import _beta

from .helpers import batch, model


def _mixed(name: str, x: torch.Tensor, y: torch.Tensor, seed: int = 0, **settings: object):
    d = gl.defenses.create(name, **settings)
    return d.transform_batch(x, y, num_classes=3, generator=torch.Generator().manual_seed(seed))


def test_mixup_mixes_pairs_with_matching_label_weights() -> None:
    x, y = batch(6)
    mx, my = _mixed("mixup", x, y, alpha=0.4)
    assert mx.shape == x.shape and my.shape == (6, 3)
    torch.testing.assert_close(my.sum(1), torch.ones(6))
    assert float(mx.min()) >= 0 and float(mx.max()) <= 1
    # every mixed image is lam x_i + (1 - lam) x_j (lam by least squares), and its label
    # weights are the same lam
    onehot = torch.nn.functional.one_hot(y, 3).float()
    for i in range(6):
        found = False
        for j in range(6):
            d = (x[i] - x[j]).flatten()
            if j == i:
                found = found or bool(torch.allclose(mx[i], x[i]))
                continue
            lam = float(((mx[i] - x[j]).flatten() @ d) / (d @ d))
            if float((lam * x[i] + (1 - lam) * x[j] - mx[i]).abs().max()) < 1e-5:
                assert -1e-5 <= lam <= 1.0 + 1e-5
                torch.testing.assert_close(my[i], lam * onehot[i] + (1 - lam) * onehot[j],
                                           atol=1e-5, rtol=0)
                found = True
        assert found, f"image {i} is not a mix of two batch images"


def test_beta_draws_have_the_right_moments() -> None:
    draws = _beta(2.0, 4000, torch.Generator().manual_seed(0))
    assert abs(float(draws.mean()) - 0.5) < 0.01
    assert 0.9 * 0.05 < float(draws.var()) < 1.1 * 0.05  # 1 / (4 (2 alpha + 1))
    small = _beta(0.3, 4000, torch.Generator().manual_seed(1))
    var = 1 / (4 * (2 * 0.3 + 1))
    assert 0.9 * var < float(small.var()) < 1.1 * var


def test_instahide_pixels_are_a_mix_or_its_flip() -> None:
    x, y = batch(5)
    plain, py = _mixed("instahide", x, y, k=3, sign_flip=False)
    flipped, fy = _mixed("instahide", x, y, k=3, sign_flip=True)
    torch.testing.assert_close(py, fy)
    torch.testing.assert_close(fy.sum(1), torch.ones(5))
    is_same = (flipped - plain).abs() < 1e-6
    is_flip = (flipped - (1 - plain)).abs() < 1e-6
    assert bool((is_same | is_flip).all())
    assert 0.4 < float(is_flip.float().mean()) < 0.6
    assert float(flipped.min()) >= 0 and float(flipped.max()) <= 1


def test_mixup_changes_the_shared_gradient_but_not_the_truth() -> None:
    net = model(0)
    x, y = batch(4)
    clean, _ = gl.simulate(net, x, y)
    obs, truth = gl.simulate(net, x, y, defense="mixup")
    assert torch.equal(truth.images, x)
    assert not torch.allclose(obs.update[0], clean.update[0])


@pytest.mark.parametrize(("steps", "reduce"), [(1, "mean"), (3, "sum")])
def test_secure_aggregation_equals_the_clients_aggregate(steps: int, reduce: str) -> None:
    net = model(0)
    x, y = batch(6)
    inner = {"name": "noise", "sigma": 0.01}
    obs, _ = gl.simulate(net, x, y, defense={"name": "secagg", "clients": 3, "reduce": reduce,
                                             "client_defense": inner},
                         local_steps=steps, seed=5)
    parts = [gl.simulate(net, x[2 * i:2 * i + 2], y[2 * i:2 * i + 2], defense=inner,
                         local_steps=steps, seed=5 + i)[0].update for i in range(3)]
    for k, agg in enumerate(obs.update):
        total = parts[0][k] + parts[1][k] + parts[2][k]
        torch.testing.assert_close(agg, total / 3 if reduce == "mean" else total)
    assert obs.batch_size == 6
    assert obs.defense_report == {"clients": 3, "client_batch": 2}


def test_secure_aggregation_refuses_uneven_split() -> None:
    with pytest.raises(gl.errors.ConfigError, match="equal size"):
        gl.simulate(model(0), *batch(5), defense={"name": "secagg", "clients": 2})
