"""The model zoo: shapes, seeds, paper-specific details."""

import pytest
import torch

import gradleak as gl
from gradleak.errors import ConfigError, RegistryError


@pytest.mark.parametrize("name", ["mlp", "lenet", "lenet5", "convnet", "convnet_small",
                                  "resnet20", "resnet32", "resnet18"])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_models_map_images_to_logits(name: str, shape: tuple[int, int, int]) -> None:
    kwargs = {"width": 8} if name == "convnet" else {}
    model = gl.models.create(name, num_classes=7, in_shape=shape, **kwargs)
    assert model(torch.rand(2, *shape)).shape == (2, 7)


def test_seeded_creation_is_reproducible_and_isolated() -> None:
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a, b = gl.models.create("lenet", seed=5), gl.models.create("lenet", seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_lenet_is_dlgs() -> None:
    model = gl.models.create("lenet")
    assert model.fc.in_features == 768
    assert all(p.abs().max() <= 0.5 for p in model.parameters())
    assert sum(isinstance(m, torch.nn.Sigmoid) for m in model.modules()) == 3


def test_mlp_depth_and_width() -> None:
    model = gl.models.create("mlp", depth=4, width=64)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [64, 64, 64, 10]
    with pytest.raises(ConfigError):
        gl.models.create("mlp", depth=0)


def test_unknown_model() -> None:
    with pytest.raises(RegistryError, match="unknown model 'vgg'"):
        gl.models.create("vgg")


def test_convnet_small_is_three_bn_blocks() -> None:
    model = gl.models.create("convnet_small", num_classes=5, width=4)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.stride) for c in convs] == [(4, (1, 1)), (8, (2, 2)), (8, (2, 2))]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 3
    assert model.fc.in_features == 8 * 8 * 8
