"""The GenerativePrior contract the attacks rely on: stages, per-sample decoding, vmap, wrap."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

import gradleak as gl
from gradleak.errors import ConfigError
from gradleak.generative import GenerativePrior, project
from gradleak.generative.arch import GeneratorSpec, build, fold_batchnorm


@pytest.fixture(params=["dcgan", "vae"])
def prior(request: pytest.FixtureRequest, tiny_dcgan: GenerativePrior,
          tiny_vae: GenerativePrior) -> GenerativePrior:
    return tiny_dcgan if request.param == "dcgan" else tiny_vae


def test_features_and_decode_from_agree_at_every_stage(prior: GenerativePrior) -> None:
    z = prior.sample_latent(3, torch.Generator().manual_seed(0))
    x = prior(z)
    assert prior.num_stages == len(prior.blocks) + 1 == 2  # 8x8: stem 4x4, one block
    for k in range(prior.num_stages):
        h = prior.features(z, k)
        assert torch.equal(prior.decode_from(h, k), x)
    assert torch.equal(prior.features(z, 0), prior.stem(z))
    assert prior.features(z, 1).shape[-1] == 8  # head input at full size
    with pytest.raises(ConfigError, match="out of range"):
        prior.features(z, prior.num_stages)
    with pytest.raises(ConfigError, match="latents must have shape"):
        prior(torch.zeros(2, prior.latent_dim + 1))


def test_samples_decode_independently(prior: GenerativePrior) -> None:
    z = prior.sample_latent(6, torch.Generator().manual_seed(1))
    together = prior(z)
    alone = torch.cat([prior(z[i : i + 1]) for i in range(6)])
    assert torch.allclose(together, alone, atol=1e-6)


def test_sample_latent_is_seeded_standard_normal(prior: GenerativePrior) -> None:
    a = prior.sample_latent(4000, torch.Generator().manual_seed(5))
    b = prior.sample_latent(4000, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (4000, prior.latent_dim)
    assert abs(float(a.mean())) < 0.05 and abs(float(a.std()) - 1.0) < 0.05


def test_vmap_over_per_sample_parameters_equals_a_loop(prior: GenerativePrior) -> None:
    """GIAS fine-tunes one generator copy per image: batched copies must equal a loop."""
    n = 3
    g = torch.Generator().manual_seed(2)
    base = dict(prior.named_parameters())
    stacked = {
        k: v.unsqueeze(0) + 0.05 * torch.randn((n, *v.shape), generator=g)
        for k, v in base.items()
    }
    z = prior.sample_latent(n, g)

    def decode(params: dict[str, torch.Tensor], zi: torch.Tensor) -> torch.Tensor:
        return functional_call(prior, params, (zi.unsqueeze(0),)).squeeze(0)

    batched = vmap(decode)(stacked, z)
    looped = torch.stack([decode({k: v[i] for k, v in stacked.items()}, z[i]) for i in range(n)])
    assert batched.shape == (n, prior.channels, prior.image_size, prior.image_size)
    assert torch.allclose(batched, looped, atol=1e-6)
    # gradients per copy, too (what stage 2 of GIAS differentiates)
    target = torch.rand_like(batched)

    def loss(params: dict[str, torch.Tensor], zi: torch.Tensor, ti: torch.Tensor) -> torch.Tensor:
        return (decode(params, zi) - ti).pow(2).mean()

    grads = vmap(torch.func.grad(loss))(stacked, z, target)
    for i in range(n):
        ref = torch.func.grad(loss)({k: v[i] for k, v in stacked.items()}, z[i], target[i])
        assert all(torch.allclose(grads[k][i], ref[k], atol=1e-6) for k in ref)


def test_folding_batchnorm_keeps_the_eval_function() -> None:
    torch.manual_seed(0)
    spec = GeneratorSpec(latent_dim=5, image_size=16, channels=3, width=32, norm="batch")
    stem, blocks, head = build(spec)
    for m in [*stem.modules(), *blocks.modules()]:
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    net = nn.Sequential(stem, *blocks, head).eval()
    z = torch.randn(4, 5)
    before = net(z)
    fold_batchnorm(stem, blocks)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert torch.allclose(net(z), before, atol=1e-5)


def test_wrap_a_plain_module() -> None:
    net = nn.Sequential(nn.Linear(4, 3 * 8 * 8), nn.Unflatten(1, (3, 8, 8)), nn.Sigmoid())
    G = gl.generative.wrap(net, latent_dim=4, image_size=8, channels=3, name="mine")
    z = torch.randn(2, 4)
    assert G.kind == "custom" and G.num_stages == 1 and G.metadata["name"] == "mine"
    assert torch.equal(G.features(z, 0), z)
    assert torch.equal(G.decode_from(z, 0), net(z)) and torch.equal(G(z), net(z))
    assert net.training  # the caller's module is not changed
    assert next(net.parameters()).requires_grad


def test_wrap_keeps_the_stages_of_a_staged_module(tiny_vae: GenerativePrior) -> None:
    class Staged(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem, self.blocks, self.head = (copy.deepcopy(tiny_vae.stem),
                                                 copy.deepcopy(tiny_vae.blocks),
                                                 copy.deepcopy(tiny_vae.head))

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            h = self.stem(z)
            for b in self.blocks:
                h = b(h)
            return self.head(h)

    G = gl.generative.wrap(Staged(), latent_dim=6, image_size=8, channels=1)
    z = torch.randn(2, 6)
    assert G.num_stages == tiny_vae.num_stages
    assert torch.equal(G.features(z, 1), tiny_vae.features(z, 1))
    assert torch.equal(G(z), tiny_vae(z))


@pytest.mark.parametrize(
    ("net", "match"),
    [
        (nn.Sequential(nn.Linear(4, 64), nn.Unflatten(1, (1, 8, 8))), r"\[0, 1\]"),
        (nn.Sequential(nn.Linear(4, 48), nn.Unflatten(1, (3, 4, 4)), nn.Sigmoid()), "not"),
        (nn.Sequential(nn.Linear(5, 64), nn.Unflatten(1, (1, 8, 8)), nn.Sigmoid()), "fails"),
        (nn.Sequential(nn.Linear(4, 64), nn.Unflatten(1, (1, 8, 8)), nn.BatchNorm2d(1),
                       nn.Sigmoid()).train(), None),
    ],
)
def test_wrap_refuses_invalid_generators(net: nn.Module, match: str | None) -> None:
    if match is None:  # batch norm in train mode: wrap puts the copy in eval mode -> fine
        G = gl.generative.wrap(net, latent_dim=4, image_size=8, channels=1)
        assert not G.training
        return
    channels = 3 if "48" in repr(net) else 1
    with pytest.raises(ConfigError, match=match):
        gl.generative.wrap(net, latent_dim=4, image_size=8, channels=channels)


def test_wrap_refuses_a_batch_dependent_module() -> None:
    class BatchMean(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            x = torch.sigmoid(z - z.mean(0, keepdim=True))
            return x.view(len(z), 1, 2, 2).repeat(1, 1, 2, 2)

    with pytest.raises(ConfigError, match="inside a batch"):
        gl.generative.wrap(BatchMean(), latent_dim=4, image_size=4, channels=1)


def test_projection_recovers_images_in_range_and_not_others(tiny_vae: GenerativePrior) -> None:
    g = torch.Generator().manual_seed(3)
    in_range = tiny_vae(tiny_vae.sample_latent(3, g))
    noise = torch.rand(3, 1, 8, 8, generator=g)
    good = project(tiny_vae, in_range, steps=150, starts=2, lr=0.1).psnr
    bad = project(tiny_vae, noise, steps=150, starts=2, lr=0.1).psnr
    assert float(good.min()) > 28.0
    assert float(bad.max()) < 15.0
    with pytest.raises(ConfigError, match="project"):
        project(tiny_vae, torch.rand(2, 3, 8, 8))
