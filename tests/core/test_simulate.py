"""The client side: FedSGD gradients, FedAvg deltas, defenses and input checks."""

import pytest
import torch

import gradleak as gl
from gradleak.errors import ConfigError, ObservationError, RegistryError


def _batch(n: int = 3, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, size, size, generator=g), torch.tensor([0, 2, 2][:n])


def _model() -> torch.nn.Module:
    return gl.models.create("mlp", depth=2, width=32, in_shape=(3, 16, 16), num_classes=4)


def test_fedsgd_gradient_matches_autograd() -> None:
    model, (x, y) = _model(), _batch()
    obs, truth = gl.simulate(model, x, y)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    ref = torch.autograd.grad(loss, list(model.parameters()))
    assert obs.kind == "gradient" and obs.batch_size == 3 and obs.labels is None
    for a, b in zip(obs.update, ref, strict=True):
        torch.testing.assert_close(a, b)
    assert torch.equal(truth.images, x) and torch.equal(truth.labels, y)
    assert obs.num_classes == 4 and obs.data_shape == (3, 16, 16)


def test_fedavg_delta_equals_manual_sgd_steps() -> None:
    model, (x, y) = _model(), _batch()
    obs, _ = gl.simulate(model, x, y, local_steps=3, local_lr=0.05, local_batch_size=2)
    work = [p.detach().clone() for p in model.parameters()]
    batches = [(x[:2], y[:2]), (x[2:], y[2:]), (x[:2], y[:2])]
    for xb, yb in batches:
        params = [w.requires_grad_(True) for w in work]
        names = [n for n, _ in model.named_parameters()]
        out = torch.func.functional_call(model, dict(zip(names, params, strict=True)), (xb,))
        grads = torch.autograd.grad(torch.nn.functional.cross_entropy(out, yb), params)
        work = [(w - 0.05 * g).detach() for w, g in zip(params, grads, strict=True)]
    for d, w, p in zip(obs.update, work, model.parameters(), strict=True):
        torch.testing.assert_close(d, w - p.detach())
    assert obs.kind == "delta" and obs.local_steps == 3


def test_sent_model_is_a_snapshot() -> None:
    model = gl.models.create("convnet", width=4, in_shape=(3, 16, 16))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _batch()
    obs, _ = gl.simulate(model, x, y, local_steps=2)
    for k, v in obs.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_labels_shared_only_when_asked() -> None:
    x, y = _batch()
    obs, _ = gl.simulate(_model(), x, y, share_labels=True, share_batch_size=False)
    assert torch.equal(obs.labels, y) and obs.batch_size is None


def test_noise_defense_changes_update_reproducibly() -> None:
    x, y = _batch()
    clean, _ = gl.simulate(_model(), x, y)
    a, _ = gl.simulate(_model(), x, y, defense={"name": "noise", "sigma": 0.5}, seed=3)
    b, _ = gl.simulate(_model(), x, y, defense={"name": "noise", "sigma": 0.5}, seed=3)
    assert a.defense == "noise(sigma=0.5)"
    assert not torch.allclose(a.update[0], clean.update[0])
    torch.testing.assert_close(a.update[0], b.update[0])


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (torch.rand(2, 3, 16, 16), torch.tensor([0]), "2 images but 1 labels"),
        (torch.rand(3, 16, 16), torch.tensor([0]), r"\(N, C, H, W\)"),
        (torch.full((1, 3, 16, 16), float("nan")), torch.tensor([0]), "NaN"),
        (torch.rand(1, 3, 16, 16) * 5, torch.tensor([0]), r"\[0, 1\]"),
        (torch.rand(1, 3, 16, 16), torch.tensor([0.0]), "integer"),
        (torch.rand(1, 3, 16, 16), torch.tensor([7]), r"labels must lie in \[0, 4\)"),
        (torch.rand(1, 3, 32, 32), torch.tensor([0]), "cannot process images of shape"),
    ],
)
def test_bad_inputs_give_clear_errors(images, labels, message) -> None:
    with pytest.raises(ObservationError, match=message):
        gl.simulate(_model(), images, labels)


def test_bad_settings_give_clear_errors() -> None:
    x, y = _batch()
    with pytest.raises(ConfigError):
        gl.simulate(_model(), x, y, local_steps=0)
    with pytest.raises(RegistryError, match="unknown defense 'nope'"):
        gl.simulate(_model(), x, y, defense="nope")
    with pytest.raises(ConfigError, match="sigma"):
        gl.simulate(_model(), x, y, defense={"name": "noise", "sigma": -1})
