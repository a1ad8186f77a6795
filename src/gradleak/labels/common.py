"""Shared pieces of the last-layer label strategies (``yin``, ``ilrg``, ``llg``).

All three read the gradient of the final fully connected (classification) layer. For a mean
cross-entropy loss over a batch of ``B`` samples with penultimate features ``h_j`` (the input
of the last layer), softmax probabilities ``p_j`` and one-hot labels ``y_j``::

    dL/dW = (1/B) * sum_j (p_j - y_j) h_j^T        (K x m)
    dL/db = (1/B) * sum_j (p_j - y_j)              (K,)

so a class present in the batch receives the negative ``-(1 - p) h_j`` terms of its own samples.
This module finds that layer, turns a FedAvg delta into a gradient where that is exact (one
local step: ``delta = -lr * grad``), and checks the assumptions the strategies share.

References:
    Yin et al., "See through Gradients: Image Batch Recovery via GradInversion", CVPR 2021.
    Ma et al., "Instance-wise Batch Label Restoration via Gradients in Federated Learning",
    ICLR 2023.
    Wainakh et al., "User-Level Label Leakage from Gradients in Federated Learning",
    PETS 2022.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradleak.errors import ThreatModelError
from gradleak.types import Observation
from gradleak.updates import gradient_from_update, one_step_gradient_problem

__all__ = [
    "LastLayer",
    "counts_to_labels",
    "find_classifier",
    "integer_counts",
    "last_layer",
    "probe_features",
    "require_batch_size",
    "require_cross_entropy",
    "require_nonnegative_features",
]


@dataclass(frozen=True)
class LastLayer:
    """The classification layer of an observed model and its (recovered) gradient.

    Attributes:
        module: the final ``nn.Linear`` of the model (the server's copy; do not modify).
        name: its module name in ``model.named_modules()``.
        weight_grad: gradient of the mean loss w.r.t. the weight, (K, m), float64.
        bias_grad: gradient w.r.t. the bias, (K,), float64, or None if the layer has no bias.
        exact: False when the gradient was approximated from a multi-step FedAvg delta.
    """

    module: nn.Linear
    name: str
    weight_grad: Tensor
    bias_grad: Tensor | None
    exact: bool = True

    @property
    def num_classes(self) -> int:
        """Number of rows K of the weight (output classes)."""
        return int(self.weight_grad.shape[0])


def find_classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """The last ``nn.Linear`` of ``model`` in module-registration order, with its name.

    Raises:
        ThreatModelError: the model has no ``nn.Linear`` layer.
    """
    found: tuple[str, nn.Linear] | None = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            found = (name, mod)
    if found is None:
        raise ThreatModelError(
            "label recovery from the last layer needs a model whose classifier is a final "
            "nn.Linear layer; this model has none"
        )
    return found


def require_batch_size(obs: Observation, strategy: str) -> int:
    """``obs.batch_size`` or a :class:`ThreatModelError` saying how to share it."""
    if obs.batch_size is None:
        raise ThreatModelError(
            f"label strategy {strategy!r} needs the batch size "
            "(simulate(..., share_batch_size=True))"
        )
    return int(obs.batch_size)


def require_cross_entropy(obs: Observation, strategy: str) -> None:
    """Refuses losses other than softmax cross-entropy (the strategies' derivation)."""
    if obs.loss != "cross_entropy":
        raise ThreatModelError(
            f"label strategy {strategy!r} assumes a softmax cross-entropy loss; this client "
            f"trained with {obs.loss!r}"
        )


def _gradient_from_update(
    obs: Observation, strategy: str, approximate_fedavg: bool
) -> tuple[dict[str, Tensor], bool]:
    """Per-parameter gradient (by name) recovered from the update, and whether it is exact."""
    if obs.kind == "gradient" or one_step_gradient_problem(obs) is None:
        return gradient_from_update(obs)
    if not approximate_fedavg:
        raise ThreatModelError(
            f"label strategy {strategy!r} reads a gradient; this observation is a FedAvg delta "
            f"of {obs.local_steps} local step(s) with local_batch_size={obs.local_batch_size}, "
            "which is not an exact multiple of one gradient. Pass approximate_fedavg=True to "
            "use -delta / (local_lr * local_steps) as an approximate mean gradient."
        )
    return gradient_from_update(obs, approximate_fedavg=True)


def last_layer(
    obs: Observation, strategy: str, *, approximate_fedavg: bool = False
) -> LastLayer:
    """Finds the classification layer of ``obs.model`` and its gradient in float64.

    Args:
        obs: the observation.
        strategy: the calling strategy's name (used in error messages).
        approximate_fedavg: accept a multi-step FedAvg delta, approximating the mean gradient
            by ``-delta / (local_lr * local_steps)``.

    Raises:
        ThreatModelError: no final linear layer, its output size is not the number of classes,
            its weight is not trained (no update), or the update is a delta that cannot be
            turned into a gradient.
    """
    name, module = find_classifier(obs.model)
    if module.out_features != obs.num_classes:
        raise ThreatModelError(
            f"label strategy {strategy!r} needs the last linear layer to output one logit per "
            f"class; {name!r} has {module.out_features} outputs for {obs.num_classes} classes"
        )
    grads, exact = _gradient_from_update(obs, strategy, approximate_fedavg)
    wname = f"{name}.weight" if name else "weight"
    bname = f"{name}.bias" if name else "bias"
    if wname not in grads:
        raise ThreatModelError(
            f"label strategy {strategy!r} needs the update of the last layer's weight "
            f"({wname!r}), which the client did not train"
        )
    bias = grads.get(bname) if module.bias is not None else None
    return LastLayer(
        module=module,
        name=name,
        weight_grad=grads[wname].detach().to(torch.float64),
        bias_grad=None if bias is None else bias.detach().to(torch.float64),
        exact=exact,
    )


def probe_features(obs: Observation, *, n: int = 8, seed: int = 0) -> Tensor:
    """The inputs of the last layer for ``n`` uniform-noise images, (n, m).

    Runs a copy of the server's model (its buffers are not touched) in the client's mode.
    The server owns the model, so probing it is within the threat model; it shows whether
    the penultimate activations can be negative (e.g. tanh or an un-rectified feature).
    """
    model = copy.deepcopy(obs.model)
    model.train(obs.train_mode)
    _, module = find_classifier(model)
    captured: list[Tensor] = []

    def hook(_mod: nn.Module, args: tuple[Tensor, ...]) -> None:
        captured.append(args[0].detach())

    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *obs.data_shape, generator=gen).to(obs.update[0].device)
    handle = module.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            model(obs.normalize(x))
    finally:
        handle.remove()
    if not captured:
        raise ThreatModelError("the model's last linear layer was not used in the forward pass")
    return captured[-1].reshape(-1, module.in_features)


def require_nonnegative_features(obs: Observation, strategy: str) -> None:
    """Raises when probing shows negative inputs to the last layer.

    The sign arguments of ``yin`` and ``llg`` hold only if the features are non-negative
    (ReLU, sigmoid, or a pooling of them).
    """
    feats = probe_features(obs)
    if float(feats.min()) < 0.0:
        raise ThreatModelError(
            f"label strategy {strategy!r} assumes non-negative inputs to the last layer (ReLU "
            f"or sigmoid features), but probing the model gave values down to "
            f"{float(feats.min()):.3g}. Use 'ilrg', or pass check_assumptions=False to run "
            "it anyway."
        )


def integer_counts(raw: Tensor, total: int) -> Tensor:
    """Rounds real per-class counts to non-negative integers that sum to ``total``.

    Negative estimates are set to zero; the remaining mass is rounded by the largest-remainder
    rule (floors first, then one extra instance to the classes with the largest fractional
    parts; surplus instances are taken from the smallest fractional parts).

    Args:
        raw: (K,) real-valued count estimates.
        total: the batch size B.

    Returns:
        (K,) int64 counts summing to ``total``.
    """
    x = raw.detach().to(torch.float64).clamp(min=0.0)
    x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
    base = torch.floor(x)
    frac = x - base
    counts = base.to(torch.int64)
    missing = total - int(counts.sum())
    if missing > 0:
        order = torch.argsort(frac, descending=True, stable=True)
        k = len(order)
        for i in range(missing):
            counts[order[i % k]] += 1
    elif missing < 0:
        # take away from the smallest fractional parts first, never below zero
        order = torch.argsort(frac, stable=True)
        need = -missing
        while need > 0:
            progressed = False
            for idx in order.tolist():
                if need == 0:
                    break
                if counts[idx] > 0:
                    counts[idx] -= 1
                    need -= 1
                    progressed = True
            if not progressed:  # pragma: no cover - counts sum is positive here
                break
    return counts


def counts_to_labels(counts: Tensor) -> Tensor:
    """Per-class counts (K,) -> sorted labels (sum(counts),) int64."""
    classes = torch.arange(len(counts), dtype=torch.int64)
    return torch.repeat_interleave(classes, counts.to(torch.int64))


#: largest |sum of the bias gradient| / its l1 norm accepted as a cross-entropy gradient
BIAS_SUM_TOLERANCE = 0.2


def require_softmax_bias_gradient(layer: LastLayer, strategy: str) -> Tensor:
    """The last layer's bias gradient, checked against softmax cross-entropy's identity.

    For a softmax cross-entropy loss (with or without label smoothing) every sample's logit
    gradient ``p - y`` sums to zero over the classes, so the bias gradient -- and a FedAvg
    delta, a sum of such gradients -- sums to zero too. A client-side defense that acts on
    the update (pruning, sign compression, coarse quantisation, strong noise) breaks this;
    the counts read from such an update are meaningless, so they are refused rather than
    returned.

    Raises:
        ThreatModelError: no bias, a non-finite bias gradient, or one whose sum is more than
            :data:`BIAS_SUM_TOLERANCE` of its l1 norm.
    """
    gb = layer.bias_grad
    if gb is None:
        raise ThreatModelError(
            f"label strategy {strategy!r} needs a bias on the last linear layer (its gradient "
            f"carries the counts); {layer.name!r} has none. Use 'yin' or 'llg' instead."
        )
    if not bool(torch.isfinite(gb).all()):
        raise ThreatModelError(f"label strategy {strategy!r}: the last layer's bias gradient "
                               "is not finite; the update cannot be read")
    l1 = float(gb.abs().sum())
    ratio = abs(float(gb.sum())) / l1 if l1 > 0 else 1.0
    if ratio > BIAS_SUM_TOLERANCE:
        raise ThreatModelError(
            f"label strategy {strategy!r}: the last layer's bias gradient sums to "
            f"{ratio:.2f} of its l1 norm, but a softmax cross-entropy gradient sums to zero; "
            "the update was altered on the client (pruned, sign-compressed, quantised or "
            "noised), so label counts cannot be read from it. Share labels, or optimise them "
            "jointly (labels='joint')."
        )
    return gb
