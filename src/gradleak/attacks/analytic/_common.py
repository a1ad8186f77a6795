"""Helpers shared by the closed-form attacks: gradients from an update, model probing, images.

The analytic attacks (bias, R-GAP, SPEAR) need the exact gradient of the mean loss and the
layer structure of the model. A FedAvg delta of one full-batch local step is
``-local_lr * gradient``, so it is converted back; anything else is refused.
Model structure is read by *executing* the model once on a probe input with forward hooks,
so a custom ``nn.Module`` works as long as its computation is the chain the attack needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradleak.attacks.base import REQUIREMENTS
from gradleak.errors import ThreatModelError
from gradleak.types import Normalization, Observation
from gradleak.updates import gradient_from_update, one_step_gradient_problem

# Activation modules that carry no parameters and act elementwise.
ELEMENTWISE_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Identity,
)


# --------------------------------------------------------------------------- gradients
REQUIREMENTS.register("gradient_or_one_step_delta")(one_step_gradient_problem)


def observed_gradients(obs: Observation) -> dict[str, Tensor]:
    """``{parameter name: gradient}`` of the mean training loss.

    For a FedAvg delta of one SGD step, ``delta = -local_lr * gradient`` (McMahan et al.,
    2017), so the gradient is ``-delta / local_lr``: every ratio the attacks take is unchanged.

    Raises:
        ThreatModelError: the update is a multi-step delta.
    """
    problem = one_step_gradient_problem(obs)
    if problem is not None:
        raise ThreatModelError(f"this closed-form attack needs {problem}")
    return gradient_from_update(obs)[0]


# --------------------------------------------------------------------------- probing
@dataclass
class Call:
    """One executed leaf module: its qualified name, the module, its input and output."""

    name: str
    module: nn.Module
    input: Tensor
    output: Tensor


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's parameters (float32 if it has none)."""
    for p in model.parameters():
        if p.dtype.is_floating_point:
            return p.dtype
    return torch.float32


def probe_input(obs: Observation, dtype: torch.dtype) -> Tensor:
    """A deterministic [0,1] probe of one input, normalised as the client does."""
    gen = torch.Generator().manual_seed(1234)
    x = torch.rand((1, *obs.data_shape), generator=gen, dtype=torch.float64).to(dtype)
    return obs.normalize(x)


def trace_calls(model: nn.Module, x: Tensor) -> tuple[list[Call], Tensor]:
    """Runs ``model(x)`` in eval mode, recording every leaf module call in execution order."""
    names = {id(m): n for n, m in model.named_modules()}
    calls: list[Call] = []
    handles = []

    def hook(mod: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        if inputs and isinstance(inputs[0], Tensor) and isinstance(output, Tensor):
            calls.append(Call(names.get(id(mod), "?"), mod, inputs[0].detach(), output.detach()))

    for m in model.modules():
        if not list(m.children()):
            handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return calls, out.detach()


def has_trainable(module: nn.Module) -> bool:
    """Whether the module owns a trainable parameter."""
    return any(p.requires_grad for p in module.parameters(recurse=False))


@dataclass
class FirstLinear:
    """The first executed layer of a model when it is a fully connected layer.

    Attributes:
        name: qualified module name (``weight``/``bias`` are ``name + ".weight"`` etc.).
        module: the ``nn.Linear``.
        next_module: the leaf module executed right after it on its output, if any.
    """

    name: str
    module: nn.Linear
    next_module: nn.Module | None


def first_linear_problem(obs: Observation, *, need_relu: bool = False) -> str | None:
    """None if the model's first layer is a biased ``nn.Linear`` on the flattened input."""
    try:
        find_first_linear(obs, need_relu=need_relu)
    except ThreatModelError as exc:
        return str(exc)
    return None


def find_first_linear(obs: Observation, *, need_relu: bool = False) -> FirstLinear:
    """Locates the fully connected first layer (with a bias) that sees the raw input.

    Args:
        obs: the observation (its model is probed, not modified).
        need_relu: also require that a ``nn.ReLU`` is applied to the layer's output (SPEAR).

    Raises:
        ThreatModelError: the first trainable layer is not a biased linear layer fed with the
            flattened (normalised) input, or (``need_relu``) no ReLU follows it.
    """
    model = obs.model
    x = probe_input(obs, model_dtype(model))
    calls, _ = trace_calls(model, x)
    idx = next((i for i, c in enumerate(calls) if has_trainable(c.module)), None)
    if idx is None:
        raise ThreatModelError("a model with trainable layers")
    call = calls[idx]
    kind = type(call.module).__name__
    if not isinstance(call.module, nn.Linear):
        raise ThreatModelError(
            f"a fully connected first layer (nn.Linear); this model's first layer "
            f"{call.name!r} is {kind}. Use an optimisation attack (e.g. 'ig') instead"
        )
    if call.module.bias is None or not call.module.bias.requires_grad:
        raise ThreatModelError(
            f"a bias in the first linear layer {call.name!r} (its bias gradient is what "
            "separates the inputs); this model's first layer has none"
        )
    if call.input.numel() != x.numel() or not torch.equal(call.input.reshape(-1), x.reshape(-1)):
        raise ThreatModelError(
            f"the first linear layer {call.name!r} to receive the flattened input directly"
        )
    nxt = None
    for c in calls[idx + 1 :]:
        if c.input.shape == call.output.shape and torch.equal(c.input, call.output):
            nxt = c.module
            break
    if need_relu and not isinstance(nxt, nn.ReLU):
        after = type(nxt).__name__ if nxt is not None else "nothing"
        raise ThreatModelError(
            f"a ReLU right after the first linear layer {call.name!r} (ReLU makes the "
            f"gradient sparse); here it is followed by {after}"
        )
    return FirstLinear(call.name, call.module, nxt)


REQUIREMENTS.register("fc_first_layer_with_bias")(lambda obs: first_linear_problem(obs))
REQUIREMENTS.register("relu_after_fc_first_layer")(
    lambda obs: first_linear_problem(obs, need_relu=True)
)


def param_gradient(grads: dict[str, Tensor], module_name: str, what: str) -> Tensor:
    """The gradient of ``module_name.what`` (``what`` = "weight" or "bias")."""
    key = f"{module_name}.{what}" if module_name else what
    if key not in grads:
        raise ThreatModelError(f"the update of parameter {key!r} (it is not trainable here)")
    return grads[key]


# --------------------------------------------------------------------------- images
def unnormalize(x: Tensor, normalization: Normalization | None) -> Tensor:
    """Undoes ``Normalization.apply`` on (N, C, H, W) tensors (identity if None)."""
    if normalization is None:
        return x
    shape = (len(normalization.mean), 1, 1)
    mean = torch.tensor(normalization.mean, dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(normalization.std, dtype=x.dtype, device=x.device).view(shape)
    return x * std + mean


def flat_to_images(flat: Tensor, obs: Observation) -> Tensor:
    """Model inputs (N, prod(data_shape)) -> [0,1]-space images (N, C, H, W), not clamped."""
    n = flat.shape[0]
    if flat.shape[1] != math.prod(obs.data_shape):
        raise ThreatModelError(
            f"recovered vectors of length {flat.shape[1]} that match data_shape {obs.data_shape}"
        )
    return unnormalize(flat.reshape(n, *obs.data_shape), obs.normalization)


def to_unit_range(images: Tensor, dtype: torch.dtype) -> Tensor:
    """Clamps reconstructed images to [0,1] (the public image contract) in ``dtype``."""
    return images.detach().clamp(0.0, 1.0).to(dtype)
