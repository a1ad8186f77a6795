"""The batch-aware 'units' head: exact feature estimate, label order, refusals, the lti path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import gradleak as gl
from gradleak.errors import ConfigError, ObservationError, ThreatModelError
from gradleak.learned import HeadSettings, PairMaker
from gradleak.learned.auxdata import random_shift
from gradleak.learned.heads import build_head
from gradleak.learned.spec import layout_of
from gradleak.learned.units import label_ranks, unit_features

SHAPE = (1, 8, 8)


def last_layer_gradient(weight: torch.Tensor, h: torch.Tensor, y: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Autograd reference: mean cross-entropy gradient of z = W h + b at b = 0."""
    w = weight.clone().requires_grad_(True)
    b = torch.zeros(weight.shape[0], dtype=weight.dtype, requires_grad=True)
    loss = nn.functional.cross_entropy(h @ w.T + b, y)
    gw, gb = torch.autograd.grad(loss, (w, b))
    return gw, gb


@pytest.mark.parametrize("labels", [[3, 0, 7, 5], [2, 2, 6, 2]])
def test_feature_estimate_is_exact_when_the_softmax_does_not_depend_on_the_image(
        labels: list[int]) -> None:
    gen = torch.Generator().manual_seed(0)
    h = torch.rand(4, 12, generator=gen, dtype=torch.float64)
    y = torch.tensor(labels)
    gw, gb = last_layer_gradient(torch.zeros(10, 12, dtype=torch.float64), h, y)
    est = unit_features(gw[None], gb[None], y[None])[0]
    for b, c in enumerate(labels):
        want = h[y == c].mean(0)  # the mean feature of the images sharing label c
        assert torch.allclose(est[b], want, rtol=1e-9, atol=1e-12)
    # control: the raw row alone is mixed with the other images' features
    raw = -4 * gw[y] / (y.unsqueeze(1) == y.unsqueeze(0)).sum(1, keepdim=True)
    assert (raw - h).abs().max() > 1e-3


def test_label_ranks_counts_repeats() -> None:
    rank, count = label_ranks(torch.tensor([[4, 1, 4, 4], [0, 1, 2, 3]]))
    assert rank.tolist() == [[0, 0, 1, 2], [0, 0, 0, 0]]
    assert count.tolist() == [[3, 1, 3, 3], [1, 1, 1, 1]]


def make_head(batch: int) -> tuple[nn.Module, list[torch.Tensor], torch.Tensor]:
    model = gl.models.create("lenet", in_shape=SHAPE)
    layout, _ = layout_of(model, SHAPE, batch, 1)
    torch.manual_seed(0)
    net = build_head("units", layout, HeadSettings(hidden=32))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, batch, *SHAPE, generator=gen)
    y = torch.stack([torch.randperm(10, generator=gen)[:batch] for _ in range(6)])
    upd = PairMaker(model).updates(x, y, generator=gen)
    net.calibrate(upd, y)
    return net, upd, y


@torch.no_grad()
def test_outputs_follow_the_order_of_the_labels() -> None:
    net, upd, y = make_head(3)
    out = net(upd, y)
    assert out.shape == (6, 3, *SHAPE) and 0 <= float(out.min()) <= float(out.max()) <= 1
    perm = torch.tensor([2, 0, 1])
    assert torch.allclose(net(upd, y[:, perm]), out[:, perm], atol=1e-6)
    # control: other labels select other rows and give other images
    assert not torch.allclose(net(upd, (y + 1) % 10), out, atol=1e-3)


def test_missing_or_bad_labels_and_models_without_a_bias_are_refused() -> None:
    net, upd, y = make_head(2)
    with pytest.raises(ConfigError, match="needs the batch's labels"):
        net(upd)
    for bad in (y[:, :1], y + 10, y.float()):
        with pytest.raises(ObservationError, match="labels must be"):
            net(upd, bad)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10, bias=False))
    layout, _ = layout_of(model, SHAPE, 2, 1)
    with pytest.raises(ConfigError, match="bias"):
        build_head("units", layout, HeadSettings(hidden=8))


def test_lti_with_units_recovers_labels_round_trips_and_refuses_other_parameters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = gl.models.create("lenet", in_shape=SHAPE)
    gen = torch.Generator().manual_seed(0)
    aux = (torch.rand(48, *SHAPE, generator=gen), torch.randint(0, 10, (48,), generator=gen))
    inv = gl.learned.train(model, aux, batch_size=2, head="units", hidden=32, epochs=1)
    path = inv.save(tmp_path / "units.safetensors")
    back = gl.learned.load(path, model=model)
    y = torch.tensor([7, 2])
    obs, truth = gl.simulate(model, torch.rand(2, *SHAPE, generator=gen), y)
    rec = gl.reconstruct(obs, attack="lti", inverter=back)
    assert rec.images.shape == (2, *SHAPE) and rec.extras["labels_source"] == "ilrg"
    assert sorted(rec.labels.tolist()) == [2, 7]
    assert torch.equal(rec.images, inv.invert(obs.update, rec.labels))
    with pytest.raises(ConfigError, match="needs the batch's labels"):
        inv.invert(obs.update)
    with pytest.raises(ThreatModelError, match="other parameters"):
        gl.learned.load(path, model=gl.models.create("lenet", in_shape=SHAPE, seed=1))
    # shared labels are used as given, in their order
    shared, _ = gl.simulate(model, truth.images, y, share_labels=True)
    rec2 = gl.reconstruct(shared, attack="lti", inverter=inv)
    assert rec2.labels.tolist() == [7, 2] and rec2.extras["labels_source"] == "given"

    def fail(*_a: object, **_k: object) -> None:  # e.g. a singular system on a pruned update
        raise RuntimeError("singular")

    monkeypatch.setattr("gradleak.labels.recover_labels", fail)
    with pytest.raises(ObservationError, match="could not recover them"):
        gl.reconstruct(obs, attack="lti", inverter=inv)


def test_random_shift_translates_within_the_replicated_border() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(5, 2, 1, 6, 6, generator=gen)
    assert random_shift(x, 0, gen) is x
    out = random_shift(x, 2, gen)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    padded = nn.functional.pad(x.flatten(0, 1), (2, 2, 2, 2), mode="replicate")
    for img, pad in zip(out.flatten(0, 1), padded, strict=True):  # each is one crop
        crops = [pad[:, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        assert any(torch.equal(img, c) for c in crops)
    assert not torch.equal(out, x)  # control: something moved


def test_units_with_context_round_trips(tmp_path: Path) -> None:
    model = gl.models.create("lenet", in_shape=SHAPE)
    gen = torch.Generator().manual_seed(2)
    aux = (torch.rand(32, *SHAPE, generator=gen), torch.randint(0, 10, (32,), generator=gen))
    inv = gl.learned.train(model, aux, batch_size=2, head="units", hidden=16, hash_dim=64,
                           context=8, epochs=1)
    assert inv.spec.settings.context == 8 and inv.head.context is not None
    back = gl.learned.load(inv.save(tmp_path / "ctx.safetensors"), model=model)
    assert back.spec == inv.spec
    obs, _ = gl.simulate(model, torch.rand(2, *SHAPE, generator=gen), torch.tensor([1, 1]))
    y = torch.tensor([1, 1])
    assert torch.equal(back.invert(obs.update, y), inv.invert(obs.update, y))
    # the context changes the output: zeroing the conv layers' gradients changes the images
    blank = [torch.zeros_like(u) for u in obs.update[:-2]] + list(obs.update[-2:])
    assert not torch.allclose(inv.invert(blank, y), inv.invert(obs.update, y))
