"""Soteria: perturb the data representation of one fully connected layer.

Sun et al., "Soteria: Provable Defense against Privacy Leakage in Federated Learning from
Representation Perspective", CVPR 2021. Let r (B, F) be the input of the defended FC layer
(the representation). The gradient of its weight, ``dL/dW = (dL/dy)^T r`` (PyTorch's weight
is (out, F)), carries r; Soteria perturbs r by removing the elements whose removal most
changes a reconstruction while changing r least: the paper's solution prunes the elements
with the largest ``||r_i|| / ||dr_i / dX||``, i.e. the smallest ``||dr_i / dX|| / ||r_i||``
(summed over the batch). Pruning element i of r zeroes column i of the layer's weight
gradient; every other gradient (other layers, the layer's bias) is left as it is.

The score uses ``|r_i|``; the authors' code divides by the signed r_i. For a batch, samples
are assumed independent (``dr_bi/dX`` is the row of sample b only), as without BatchNorm in
training mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradleak.defenses.base import Defense, Interval, StepHooks, register_defense
from gradleak.defenses.functional import drop_count
from gradleak.errors import ConfigError
from gradleak.types import trainable_parameters


def defended_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Linear]:
    """The FC layer Soteria defends: ``layer`` by name, else the model's first ``nn.Linear``."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("defense 'soteria' needs a model with a fully connected (nn.Linear) "
                          "layer")
    if layer is None:
        return linears[0]
    for n, m in linears:
        if n == layer:
            return n, m
    raise ConfigError(f"defense 'soteria': no nn.Linear called {layer!r}; the model's are "
                      f"{[n for n, _ in linears]}")


def representation_scores(model: nn.Module, fc: nn.Linear, inputs: Tensor) -> Tensor:
    """Per feature i of the FC input, ``sum_b ||dr_bi/dx_b|| / (|r_bi| + 1e-10)`` (F,).

    All F input-gradients come from one batched backward pass (``is_grads_batched``).
    """
    captured: list[Tensor] = []
    handle = fc.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    x = inputs.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            model(x)
    finally:
        handle.remove()
    r = captured[0].reshape(len(x), -1)
    feats = r.shape[1]
    basis = torch.eye(feats, dtype=r.dtype, device=r.device).unsqueeze(1).expand(
        feats, len(x), feats)
    (jac,) = torch.autograd.grad(r, x, grad_outputs=basis, is_grads_batched=True)
    norms = jac.reshape(feats, len(x), -1).norm(dim=2).T  # (B, F)
    return (norms / (r.detach().abs() + 1e-10)).sum(dim=0)


def soteria_mask(scores: Tensor, ratio: float) -> Tensor:
    """1 on the features kept: all but the ``floor(ratio * F)`` with the smallest scores."""
    mask = torch.ones_like(scores)
    k = drop_count(scores.numel(), ratio)
    if k:
        mask[scores.topk(k, largest=False).indices] = 0.0
    return mask


@register_defense("soteria")
@dataclass(frozen=True)
class Soteria(Defense):
    """Prunes ``ratio`` of the defended FC layer's representation in its weight gradient.

    Attributes:
        ratio: fraction of the F representation elements pruned (the paper's pruning rate).
        layer: name of the defended ``nn.Linear`` (None: the first one, the layer after the
            feature extractor in the paper's models).
    """

    ratio: float = 0.4
    layer: str | None = None
    stage = "representation"
    ranges = {"ratio": Interval(0.0, 1.0, high_open=True)}

    def step_hooks(self) -> StepHooks:
        def transform(model: nn.Module, inputs: Tensor, grads: list[Tensor]) -> list[Tensor]:
            _, fc = defended_layer(model, self.layer)
            mask = soteria_mask(representation_scores(model, fc, inputs), self.ratio)
            out = list(grads)
            for i, (_, p) in enumerate(trainable_parameters(model)):
                if p is fc.weight:
                    out[i] = grads[i] * mask.to(grads[i].dtype).unsqueeze(0)
            return out

        return StepHooks(grad_transform=transform)
