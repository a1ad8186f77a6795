"""R-GAP: the model read as a chain of linear / convolutional stages and activations.

Zhu & Blaschko, ICLR 2021. The model is executed once on a probe input with forward hooks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gradleak.attacks.analytic._common import (
    ELEMENTWISE_ACTIVATIONS,
    model_dtype,
    probe_input,
    trace_calls,
)
from gradleak.attacks.analytic.rgap.activations import INVERSIONS
from gradleak.attacks.base import REQUIREMENTS
from gradleak.errors import ThreatModelError
from gradleak.types import Observation


@dataclass
class Stage:
    """One layer of the chain: ``x_out = act(layer(x_in))``.

    Attributes:
        name: qualified name of the layer (its parameters are ``name.weight`` / ``name.bias``).
        layer: the ``nn.Linear`` or ``nn.Conv2d``.
        act: the elementwise activation after it (``nn.Identity`` if none).
        in_shape: shape of one input of the layer (no batch axis).
        out_shape: shape of one output of the layer.
    """

    name: str
    layer: nn.Module
    act: nn.Module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


_SKIPPABLE = (nn.Flatten, nn.Dropout, nn.Unflatten)


def chain_problem(obs: Observation) -> str | None:
    """None if the model is a chain R-GAP can invert, else what is missing."""
    try:
        parse_chain(obs)
    except ThreatModelError as exc:
        return str(exc)
    return None


def parse_chain(obs: Observation) -> list[Stage]:
    """Reads the model as a chain of Linear/Conv2d layers and elementwise activations.

    The model is executed once on a probe input; every leaf module call must consume the
    previous call's output (reshapes allowed), so custom modules work if they compute a chain.

    Raises:
        ThreatModelError: another layer type (pooling, batch norm, residual connections),
            a non-invertible activation, or a last layer R-GAP cannot start from.
    """
    model = obs.model
    x = probe_input(obs, model_dtype(model))
    calls, out = trace_calls(model, x)
    prev = x
    stages: list[Stage] = []
    for call in calls:
        mod = call.module
        if call.input.numel() != prev.numel() or not torch.equal(
            call.input.reshape(-1), prev.reshape(-1)
        ):
            raise ThreatModelError(
                f"a plain chain of layers; module {call.name!r} does not consume the previous "
                "layer's output (residual connections and branches are not supported)"
            )
        prev = call.output
        if isinstance(mod, _SKIPPABLE):
            continue
        if isinstance(mod, nn.Conv2d):
            if mod.groups != 1 or tuple(mod.dilation) != (1, 1) or mod.padding_mode != "zeros":
                raise ThreatModelError(
                    f"plain convolutions (groups=1, dilation=1, zero padding); {call.name!r} "
                    "is not one"
                )
            if isinstance(mod.padding, str):
                raise ThreatModelError(f"numeric padding in {call.name!r}")
        if isinstance(mod, nn.Linear | nn.Conv2d):
            if not mod.weight.requires_grad:
                raise ThreatModelError(f"a trainable weight in {call.name!r}")
            stages.append(
                Stage(call.name, mod, nn.Identity(), tuple(call.input.shape[1:]),
                      tuple(call.output.shape[1:]))
            )
            continue
        if isinstance(mod, ELEMENTWISE_ACTIVATIONS):
            if not stages or not isinstance(stages[-1].act, nn.Identity):
                raise ThreatModelError(
                    f"one activation after each layer; {call.name!r} is not preceded by a layer"
                )
            if type(mod) not in INVERSIONS:
                raise ThreatModelError(f"an invertible activation; {call.name!r} is not")
            stages[-1].act = mod
            continue
        if any(True for _ in mod.parameters(recurse=False)) or not isinstance(mod, nn.Module):
            raise ThreatModelError(
                f"only Linear/Conv2d layers; {call.name!r} is {type(mod).__name__}"
            )
        raise ThreatModelError(
            f"only Linear/Conv2d layers and elementwise activations (ReLU, LeakyReLU, Sigmoid, "
            f"Tanh); {call.name!r} is {type(mod).__name__}"
        )
    if not stages:
        raise ThreatModelError("a model with linear or convolutional layers")
    if not torch.equal(prev.reshape(-1), out.reshape(-1)):
        raise ThreatModelError("a model whose output is its last layer's output")
    last = stages[-1]
    if not isinstance(last.layer, nn.Linear) or not isinstance(last.act, nn.Identity):
        raise ThreatModelError("a final nn.Linear layer producing the logits (no activation)")
    has_bias = last.layer.bias is not None and last.layer.bias.requires_grad
    if not has_bias and not (obs.loss == "logistic" and last.layer.out_features == 1):
        raise ThreatModelError(
            "a bias in the last layer, or a single-output model trained with the logistic loss "
            "(R-GAP's CNN6), to start the recursion"
        )
    return stages


def _single_input_problem(obs: Observation) -> str | None:
    if obs.batch_size is None or obs.batch_size == 1:
        return None
    return (
        f"a batch of one input (this update averages {obs.batch_size}); R-GAP's linear systems "
        "only determine the batch's combination. Use 'spear' (ReLU MLPs) or 'ig'"
    )


REQUIREMENTS.register("rgap_chain")(chain_problem)
REQUIREMENTS.register("single_input")(_single_input_problem)
