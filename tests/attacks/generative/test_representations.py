"""Each representation decodes and projects correctly on tiny inputs."""

from __future__ import annotations

import math

import torch

import gradleak as gl
from gradleak.attacks.generative.representations import Intermediate, Latent, LatentAndWeights
from gradleak.attacks.optimization.representation import Box, Pixels, StageStart
from gradleak.generative import GenerativePrior
from gradleak.types import Normalization


def _box(channels: int = 1) -> Box:
    return Box(torch.zeros(channels, 1, 1), torch.ones(channels, 1, 1))


def _start(rep: Latent | Intermediate, tensors: list[torch.Tensor]) -> StageStart:
    return StageStart(tensors=tuple(t[:1] for t in tensors),
                      images=rep.images(tensors)[0], representation=rep)


def test_pixels_decode_is_the_tensor_and_project_clamps_to_the_box() -> None:
    box = Box(torch.tensor([-1.0]).view(1, 1, 1), torch.tensor([2.0]).view(1, 1, 1))
    rep = Pixels((2, 1, 4, 4), box, init="randn", boxed=True)
    z = rep.draw(torch.Generator().manual_seed(0))[0] * 5
    assert rep.decode([z]) is z
    rep.project([z])
    assert float(z.min()) >= -1.0 and float(z.max()) <= 1.0
    assert float(rep.images([z]).min()) >= 0.0


def test_box_follows_the_observation_normalisation() -> None:
    model = gl.models.create("lenet", in_shape=(1, 16, 16), num_classes=10)
    norm = Normalization(mean=(0.5,), std=(0.25,))
    obs, _ = gl.simulate(model, torch.rand(1, 1, 16, 16), torch.tensor([1]),
                         normalization=norm)
    box = Box.of(obs)
    assert torch.allclose(box.lo, torch.tensor(-2.0)) and torch.allclose(box.hi, torch.tensor(2.0))
    x = torch.rand(3, 1, 16, 16)
    assert torch.allclose(box.to_pixels(box.to_input(x)), x, atol=1e-6)


def test_latent_decodes_every_restart_and_image_with_the_prior(prior: GenerativePrior) -> None:
    rep = Latent((3, 1, 16, 16), _box(), prior)
    w = torch.randn(2, 3, prior.latent_dim)
    out = rep.decode([w])
    assert out.shape == (2, 3, 1, 16, 16)
    assert torch.allclose(out[1, 2], prior(w[1, 2][None])[0], atol=1e-6)


def test_latent_sphere_projection_sets_every_norm(prior: GenerativePrior) -> None:
    rep = Latent((3, 1, 16, 16), _box(), prior, sphere=True)
    w = torch.randn(2, 3, prior.latent_dim) * 7
    rep.project([w])
    assert torch.allclose(w.norm(dim=-1), torch.full((2, 3), math.sqrt(prior.latent_dim)))


def test_weights_stage_starts_at_the_latent_decode(prior: GenerativePrior) -> None:
    lat = Latent((2, 1, 16, 16), _box(), prior)
    w = lat.draw(torch.Generator().manual_seed(1))
    rep = LatentAndWeights((2, 1, 16, 16), _box(), prior, _start(lat, w))
    tensors = [torch.cat([t, t]) for t in rep.draw(torch.Generator())]  # 2 restarts
    assert all(t.shape[:2] == (2, 2) for t in tensors)
    assert torch.allclose(rep.decode(tensors)[0], lat.decode(w)[0], atol=1e-5)
    # changing image 1's copy of one weight changes image 1 only
    tensors[0][0, 1] += 1.0
    out = rep.decode(tensors)
    assert torch.allclose(out[0, 0], lat.decode(w)[0, 0], atol=1e-5)
    assert not torch.allclose(out[0, 1], lat.decode(w)[0, 1], atol=1e-3)


def test_feature_stage_starts_at_the_previous_decode_and_stays_in_its_ball(
        prior: GenerativePrior) -> None:
    lat = Latent((2, 1, 16, 16), _box(), prior)
    w = lat.draw(torch.Generator().manual_seed(2))
    for k in range(1, prior.num_stages):
        rep = Intermediate((2, 1, 16, 16), _box(), prior, k=k, radius=0.1,
                           start=_start(lat, w))
        h = rep.draw(torch.Generator())
        assert torch.allclose(rep.decode(h), lat.decode(w), atol=1e-5)
        h[0] = h[0] + torch.randn_like(h[0]) * 10
        rep.project(h)
        dev = (h[0] - rep.origin[None]).reshape(2, -1).abs().sum(-1)
        assert bool((dev <= rep.radius * (1 + 1e-5)).all())
    # a feature stage can follow another one: block 2 from the layer-1 features
    first = Intermediate((2, 1, 16, 16), _box(), prior, k=1, radius=0.1, start=_start(lat, w))
    h1 = first.draw(torch.Generator())
    second = Intermediate((2, 1, 16, 16), _box(), prior, k=2, radius=0.1,
                          start=_start(first, h1))
    assert torch.allclose(second.decode(second.draw(torch.Generator())), lat.decode(w),
                          atol=1e-5)


def test_the_callers_prior_is_never_modified(prior: GenerativePrior) -> None:
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    lat = Latent((2, 1, 16, 16), _box(), prior)
    w = lat.draw(torch.Generator().manual_seed(3))
    rep = LatentAndWeights((2, 1, 16, 16), _box(), prior, _start(lat, w))
    tensors = rep.draw(torch.Generator())
    for t in tensors:
        t.add_(1.0)
    rep.decode(tensors)
    assert all(torch.equal(before[k], v) for k, v in prior.state_dict().items())
    assert not prior.training
