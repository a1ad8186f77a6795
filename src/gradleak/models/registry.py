"""The model zoo registry: ``create(name, num_classes=..., in_shape=...)`` and ``available()``.

Zoo models are built without torchvision. A model made by :func:`create` carries a
``gradleak_spec`` attribute (name and kwargs) so an :class:`~gradleak.Observation` holding it
can be saved and rebuilt without pickle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gradleak.errors import ConfigError
from gradleak.registry import Registry

ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model")
register_model = MODELS.register


def create(
    name: str,
    *,
    num_classes: int = 10,
    in_shape: tuple[int, int, int] = (3, 32, 32),
    seed: int | None = 0,
    **kwargs: Any,
) -> nn.Module:
    """Builds a zoo model.

    Args:
        name: a name from :func:`available` (``"mlp"``, ``"lenet"``, ``"convnet"``, ...).
        num_classes: number of output classes.
        in_shape: (C, H, W) of the input images.
        seed: seed for the initial weights (None: torch's global RNG).
        **kwargs: model-specific settings (e.g. ``width``, ``depth`` for the MLP).

    Example:
        >>> model = create("lenet", num_classes=10)
        >>> model(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    factory = MODELS.get(name)
    if len(in_shape) != 3:
        raise ConfigError("in_shape must be (C, H, W)")
    if seed is None:
        model = factory(num_classes=num_classes, in_shape=tuple(in_shape), **kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = factory(num_classes=num_classes, in_shape=tuple(in_shape), **kwargs)
    model.gradleak_spec = {  # type: ignore[assignment]
        "name": name,
        "kwargs": {"num_classes": num_classes, "in_shape": list(in_shape), "seed": seed, **kwargs},
    }
    return model


class ModelTooLarge(ConfigError):
    """A model description exceeds a parameter or module ceiling (see :func:`parameter_count`)."""


def parameter_count(
    name: str, *, max_parameters: int | None = None, max_modules: int | None = None,
    **kwargs: Any,
) -> int:
    """Parameters of ``create(name, **kwargs)``, counted on the ``meta`` device (no memory).

    Lets a caller refuse an oversized model described by an untrusted file before building
    it. With ceilings, construction is aborted as soon as one is passed (global torch
    registration hooks count parameters and submodules as they are created), so a very deep
    description (``depth=10**6``) fails in milliseconds instead of building for minutes.

    Raises:
        ModelTooLarge: a ceiling is passed.
    """
    seen = {"parameters": 0, "modules": 0}

    def on_parameter(_module: nn.Module, _name: str, param: Any) -> None:
        seen["parameters"] += 0 if param is None else int(param.numel())
        seen["modules"] += 1  # layers may be built in a list before any is registered
        if max_parameters is not None and seen["parameters"] > max_parameters:
            raise ModelTooLarge(f"model {name!r} has more than {max_parameters:,} parameters")
        if max_modules is not None and seen["modules"] > max_modules:
            raise ModelTooLarge(f"model {name!r} has more than {max_modules:,} submodules "
                                "and parameter tensors (max_modules)")

    def on_module(_module: nn.Module, _name: str, _sub: Any) -> None:
        seen["modules"] += 1
        if max_modules is not None and seen["modules"] > max_modules:
            raise ModelTooLarge(f"model {name!r} has more than {max_modules:,} submodules "
                                "and parameter tensors (max_modules)")

    from torch.nn.modules import module as torch_module

    hooks = [torch_module.register_module_parameter_registration_hook(on_parameter),
             torch_module.register_module_module_registration_hook(on_module)]
    try:
        with torch.device("meta"):
            model = create(name, seed=None, **{k: v for k, v in kwargs.items() if k != "seed"})
    finally:
        for h in hooks:
            h.remove()
    return sum(p.numel() for p in model.parameters())


def available() -> list[str]:
    """Names of the zoo's models."""
    return MODELS.available()


def flat_features(body: nn.Module, in_shape: tuple[int, ...]) -> int:
    """Number of features ``body`` produces for one input of ``in_shape``."""
    with torch.no_grad():
        was_training = body.training
        body.eval()
        n = body(torch.zeros(1, *in_shape)).flatten(1).shape[1]
        body.train(was_training)
    return int(n)
