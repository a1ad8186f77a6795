"""Soteria prunes only the defended layer's weight columns; PRECODE's bottleneck as defined."""

from __future__ import annotations

import torch

import gradleak as gl
from gradleak.defenses.precode import PrecodeHead, kl_standard_normal, precode_heads
from gradleak.defenses.soteria import representation_scores

from .helpers import batch, model


def test_scores_match_a_per_feature_loop() -> None:
    """The paper's literal loop: one backward pass per representation element."""
    net = model(0)
    x, _ = batch(2)
    got = representation_scores(net, net.fc1, x)
    want = torch.zeros(32)
    for b in range(len(x)):
        xb = x[b:b + 1].clone().requires_grad_(True)
        r = torch.tanh(net.conv(xb)).flatten(1)
        for f in range(32):
            (g,) = torch.autograd.grad(r[0, f], xb, retain_graph=True)
            want[f] += g.norm() / (r[0, f].abs() + 1e-10)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_soteria_changes_only_the_defended_weight_columns() -> None:
    net = model(0)
    x, y = batch(3)
    clean, _ = gl.simulate(net, x, y)
    for ratio in (0.25, 0.5):
        obs, _ = gl.simulate(net, x, y, defense={"name": "soteria", "ratio": ratio})
        names = dict(zip(obs.param_names, obs.update, strict=True))
        ref = dict(zip(clean.param_names, clean.update, strict=True))
        for name in names:
            if name != "fc1.weight":
                assert torch.equal(names[name], ref[name]), name
        w, w0 = names["fc1.weight"], ref["fc1.weight"]
        dropped = (w == 0).all(dim=0)
        assert int(dropped.sum()) == int(ratio * 32)
        torch.testing.assert_close(w[:, ~dropped], w0[:, ~dropped], rtol=0, atol=0)
        # the pruned columns are those with the smallest scores
        scores = representation_scores(net, net.fc1, x)
        assert float(scores[dropped].max()) <= float(scores[~dropped].min())
        # the model the server sees and its outputs are unchanged
        torch.testing.assert_close(obs.model(x), net(x))


def test_soteria_layer_by_name_and_unknown_layer() -> None:
    net = model(0)
    x, y = batch(2)
    obs, _ = gl.simulate(net, x, y, defense={"name": "soteria", "ratio": 0.5, "layer": "fc2"})
    assert int((obs.named_update()["fc2.weight"] == 0).all(dim=0).sum()) == 4
    try:
        gl.simulate(net, x, y, defense={"name": "soteria", "layer": "nope"})
    except gl.errors.ConfigError as exc:
        assert "fc1" in str(exc)
    else:
        raise AssertionError("unknown layer accepted")


def test_precode_wraps_the_classifier_and_is_deterministic_in_eval() -> None:
    net = model(0)
    x, y = batch(3)
    obs, _ = gl.simulate(net, x, y, defense={"name": "precode", "size": 5, "beta": 0.1})
    wrapped = obs.model
    (head,) = precode_heads(wrapped)
    assert isinstance(wrapped.fc2, PrecodeHead)
    assert obs.defense_report is not None and obs.defense_report["model_changed"]
    # the feature extractor and the classifier keep the sent weights
    for name in ("conv.weight", "fc1.weight", "fc1.bias"):
        torch.testing.assert_close(wrapped.get_parameter(name), net.get_parameter(name))
    torch.testing.assert_close(head.classifier.weight, net.fc2.weight)
    assert any(n.startswith("fc2.bottleneck.encoder") for n in obs.param_names)
    # eval: z = mu, output = classifier(decoder(mu(f)))
    wrapped.eval()
    f = torch.tanh(wrapped.fc1(torch.tanh(wrapped.conv(x)).flatten(1)))
    mu = head.bottleneck.encoder(f)[:, :5]
    want = head.classifier(head.bottleneck.decoder(mu))
    torch.testing.assert_close(wrapped(x), want)
    torch.testing.assert_close(wrapped(x), wrapped(x))
    wrapped.train()
    assert not torch.allclose(wrapped(x), wrapped(x))  # sampling in training


def test_precode_gradient_is_the_kl_regularised_loss_gradient() -> None:
    net = model(0)
    x, y = batch(2)
    spec = {"name": "precode", "size": 4, "beta": 0.5}
    obs, _ = gl.simulate(net, x, y, defense=spec, seed=3)
    ref = obs.model_copy().train()
    with torch.random.fork_rng():
        torch.manual_seed(3)  # the client's bottleneck noise comes from the run's seed
        head = precode_heads(ref)[0].bottleneck
        captured = {}
        hook = head.encoder.register_forward_hook(lambda m, i, o: captured.update(h=o))
        loss = torch.nn.functional.cross_entropy(ref(x), y)
        hook.remove()
    h = captured["h"]
    loss = loss + 0.5 * kl_standard_normal(h[:, :4], h[:, 4:])
    grads = torch.autograd.grad(loss, [p for p in ref.parameters() if p.requires_grad])
    for got, want in zip(obs.update, grads, strict=True):
        torch.testing.assert_close(got, want)
    obs2, _ = gl.simulate(net, x, y, defense=spec, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(obs.update, obs2.update, strict=True))


def test_kl_closed_form() -> None:
    mu = torch.tensor([[0.0, 1.0]])
    logvar = torch.tensor([[0.0, torch.log(torch.tensor(4.0))]])
    # 0.5 * sum(var + mu^2 - 1 - log var) = 0.5 * (0 + (4 + 1 - 1 - log 4))
    want = 0.5 * (4.0 - float(torch.log(torch.tensor(4.0))))
    assert abs(float(kl_standard_normal(mu, logvar)) - want) < 1e-6
