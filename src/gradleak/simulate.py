"""The client side: compute what a federated client shares (FedSGD gradient or FedAvg delta).

FedSGD (McMahan et al., 2017): the gradient of the mean training loss over the private batch.
FedAvg: ``local_steps`` SGD steps with ``local_lr`` over mini-batches of ``local_batch_size``
(cycled in order); the server sees the parameter delta ``after - before``.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import Tensor, nn

from gradleak.defenses import Defense
from gradleak.defenses.base import ClientSetup, StepHooks, run_client, step_slices
from gradleak.defenses.spec import DefenseSpec
from gradleak.defenses.spec import resolve as resolve_defense
from gradleak.errors import ConfigError, ObservationError
from gradleak.losses import LossFn, get_loss
from gradleak.schema import Float, Int, check
from gradleak.types import (
    GroundTruth,
    Normalization,
    Observation,
    check_model_finite,
    trainable_parameters,
)


def _check_batch(images: Tensor, labels: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ObservationError(f"images must be a (N, C, H, W) tensor, got {shape}")
    if not images.dtype.is_floating_point:
        raise ObservationError("images must be floating point in [0, 1]; divide uint8 by 255")
    if not torch.isfinite(images).all():
        raise ObservationError("images contain NaN or inf")
    if images.min() < -1e-6 or images.max() > 1 + 1e-6:
        raise ObservationError(
            "images must lie in [0, 1]; pass normalization=... instead of normalised images"
        )
    if (not isinstance(labels, Tensor) or labels.dim() != 1 or labels.dtype.is_floating_point
            or labels.dtype in (torch.bool, torch.complex64, torch.complex128)):
        got = f"{labels.dtype} {tuple(labels.shape)}" if isinstance(labels, Tensor) else labels
        raise ObservationError(
            f"labels must be a 1-D integer tensor of class indices, got {got}"
        )
    if len(labels) != len(images):
        raise ObservationError(f"{len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise ObservationError("the batch is empty")


def _resolve_defense(defense: DefenseSpec) -> Defense | None:
    return resolve_defense(defense)


def forward_logits(model: nn.Module, x: Tensor, normalization: Normalization | None) -> Tensor:
    """Runs the model on [0,1] images, normalising first; wraps shape errors clearly."""
    inp = x if normalization is None else normalization.apply(x)
    try:
        out = model(inp)
    except RuntimeError as exc:
        raise ObservationError(
            f"the model cannot process images of shape {tuple(x.shape)}: {exc}. "
            "Check that the images match the model's expected input size and channels."
        ) from exc
    if out.dim() != 2 or out.shape[0] != x.shape[0]:
        raise ObservationError(
            f"the model must return logits of shape (N, classes), got {tuple(out.shape)}"
        )
    return out


def client_update(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    loss_fn: LossFn,
    local_steps: int,
    local_lr: float,
    local_batch_size: int | None,
    normalization: Normalization | None,
    hooks: StepHooks | None = None,
) -> tuple[list[Tensor], Literal["gradient", "delta"]]:
    """The update of one client: a gradient (1 step) or a parameter delta.

    ``hooks`` are a defense's per-step hooks (a loss regulariser, a gradient transform).
    """
    work = copy.deepcopy(model)
    params = [p for _, p in trainable_parameters(work)]
    hooks = hooks or StepHooks()

    def step_grads(xb: Tensor, yb: Tensor) -> list[Tensor]:
        loss = loss_fn(forward_logits(work, xb, normalization), yb)
        if hooks.regularizer is not None:
            loss = loss + hooks.regularizer(work)
        grads = [g.detach() for g in torch.autograd.grad(loss, params)]
        if hooks.grad_transform is not None:
            inputs = xb if normalization is None else normalization.apply(xb)
            grads = hooks.grad_transform(work, inputs, grads)
        return grads

    if local_steps == 1 and local_batch_size is None:
        return step_grads(images, labels), "gradient"
    before = [p.detach().clone() for p in params]
    for sl in step_slices(len(images), local_batch_size, local_steps):
        grads = step_grads(images[sl], labels[sl])
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.sub_(local_lr * g)
    return [(p.detach() - b) for p, b in zip(params, before, strict=True)], "delta"


def simulate(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    defense: DefenseSpec = None,
    local_steps: int = 1,
    local_lr: float = 0.1,
    share_labels: bool = False,
    seed: int = 0,
    *,
    local_batch_size: int | None = None,
    share_batch_size: bool = True,
    normalization: Normalization | tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    loss: str | None = None,
) -> tuple[Observation, GroundTruth]:
    """Simulates one federated client and returns what the server sees and the private truth.

    Args:
        model: the global model the server sent (not modified).
        images: the private batch, (N, C, H, W) in [0, 1].
        labels: the private labels, (N,) class indices.
        defense: a defense name, ``{"name": ..., **settings}`` or a :class:`Defense`.
        local_steps: 1 for FedSGD (the gradient is shared); > 1 for FedAvg (the delta is).
        local_lr: learning rate of the local SGD steps (FedAvg).
        share_labels: whether the server is told the labels.
        seed: seed of the defense's randomness.
        local_batch_size: mini-batch size of local steps (None: the whole batch). Setting it
            makes the update a FedAvg delta even with one step.
        share_batch_size: whether the server is told the batch size.
        normalization: ``Normalization`` or ``(mean, std)`` applied before the model.
        loss: a registered loss name; default: the model's ``gradleak_loss`` or cross-entropy.

    Returns:
        ``(observation, ground_truth)``.

    Example:
        >>> import gradleak as gl
        >>> model = gl.models.create("lenet")
        >>> x, y = gl.data.load("sample", size=32, n=1, seed=0)
        >>> obs, truth = gl.simulate(model, x, y)
        >>> obs.kind
        'gradient'
    """
    _check_batch(images, labels)
    check_model_finite(model)
    check(Int(1, 2**62), local_steps, "local_steps", error=ConfigError)
    check(Float(0.0, lo_open=True), local_lr, "local_lr", error=ConfigError)
    if local_batch_size is not None:
        check(Int(1, 2**62), local_batch_size, "local_batch_size", error=ConfigError)
    if isinstance(normalization, tuple):
        normalization = Normalization(tuple(normalization[0]), tuple(normalization[1]))
    loss_name = str(loss or getattr(model, "gradleak_loss", "cross_entropy"))
    loss_fn = get_loss(loss_name)
    sent = copy.deepcopy(model)
    images = images.detach()
    labels = labels.detach().long()
    with torch.no_grad():
        probe = copy.deepcopy(model).eval()
        num_classes = forward_logits(probe, images[:1], normalization).shape[1]
    if loss_name == "logistic":
        num_classes = 2
    if int(labels.max()) >= num_classes or int(labels.min()) < 0:
        raise ObservationError(f"labels must lie in [0, {num_classes}) for this model")
    dfn = _resolve_defense(defense)
    setup = ClientSetup(
        train=lambda m, x, t, hooks: client_update(
            m, x, t, loss_fn=loss_fn, local_steps=local_steps, local_lr=local_lr,
            local_batch_size=local_batch_size, normalization=normalization, hooks=hooks),
        forward=lambda m, x: forward_logits(m, x, normalization),
        loss_fn=loss_fn, local_steps=local_steps, local_lr=local_lr,
        local_batch_size=local_batch_size, num_classes=num_classes, seed=seed,
    )
    client = run_client(dfn, sent, images, labels, setup)
    report = dict(client.report)
    names = tuple(n for n, _ in trainable_parameters(client.model))
    obs = Observation(
        model=client.model,
        update=tuple(client.update),
        kind=client.kind,  # type: ignore[arg-type]
        param_names=names,
        data_shape=tuple(images.shape[1:]),  # type: ignore[arg-type]
        num_classes=num_classes,
        batch_size=len(images) if share_batch_size else None,
        labels=labels.clone() if share_labels else None,
        normalization=normalization,
        local_steps=local_steps,
        local_lr=local_lr,
        local_batch_size=local_batch_size,
        loss=loss_name,
        train_mode=model.training,
        defense=dfn.describe() if dfn else None,
        defense_report=report or None,
        model_spec=(None if report.get("model_changed")
                    else getattr(model, "gradleak_spec", None)),
    )
    return obs, GroundTruth(images=images.clone(), labels=labels.clone())
