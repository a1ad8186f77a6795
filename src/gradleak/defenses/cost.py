"""The accuracy cost of a defense (``gl.defenses.utility``): train with and without it.

Training is federated learning with one client per round: every round the client receives
the current model, computes its defended update with :func:`gradleak.simulate` on the next
mini-batch of the training split (exactly what an attack would observe) and the server
applies it (``w -= lr * gradient`` for FedSGD, ``w += delta`` for FedAvg). The same loop
without the defense, from the same initial weights and the same batches, is the baseline.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gradleak.defenses.spec import DefenseSpec, resolve
from gradleak.errors import ConfigError
from gradleak.types import Normalization, trainable_parameters

#: a dataset: a registered name (``gl.data.load(name, split=...)``) or (train x, train y,
#: test x, test y) tensors with images in [0, 1]
DatasetSpec = str | tuple[Tensor, Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class UtilityResult:
    """Held-out accuracy with and without a defense.

    Attributes:
        defense: the defense's description (None: none).
        accuracy_clean: held-out accuracy of the model trained without the defense.
        accuracy_defended: held-out accuracy of the model trained with it.
        accuracy_initial: held-out accuracy of the untrained model.
        rounds: training rounds (mini-batches) of each run.
        report: the defense's report of the last round (e.g. DP-SGD's epsilon).
        seconds: wall time of both runs.
    """

    defense: str | None
    accuracy_clean: float
    accuracy_defended: float
    accuracy_initial: float
    rounds: int
    report: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def cost(self) -> float:
        """Accuracy lost to the defense (clean - defended)."""
        return self.accuracy_clean - self.accuracy_defended


def split_data(dataset: DatasetSpec, size: int, channels: int | None
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train x, train y, test x, test y) from a dataset name or the tensors themselves."""
    if isinstance(dataset, str):
        from gradleak.data import load

        xtr, ytr = load(dataset, size=size, n=None, split="train", channels=channels)
        xte, yte = load(dataset, size=size, n=None, split="holdout", channels=channels)
        return xtr, ytr, xte, yte
    if not (isinstance(dataset, tuple) and len(dataset) == 4):
        raise ConfigError("dataset must be a name such as 'digits' or a tuple "
                          "(train_images, train_labels, test_images, test_labels)")
    return dataset


def training_rounds(n_train: int, epochs: float, batch_size: int) -> int:
    """Rounds of :func:`utility`'s training: ``max(floor(epochs * n_train / batch_size), 1)``.

    With ``sample_rate = batch_size / n_train`` this is the step count that DP-SGD's
    accountant needs for the whole training.
    """
    return max(int(epochs * n_train / batch_size), 1)


def accuracy(model: nn.Module, images: Tensor, labels: Tensor,
             normalization: Normalization | None = None, batch: int = 256) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on [0, 1] images."""
    model = model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(images), batch):
            x = images[s:s + batch]
            x = x if normalization is None else normalization.apply(x)
            correct += int((model(x).argmax(dim=1) == labels[s:s + batch]).sum())
    return correct / max(len(images), 1)


def train_federated(model: nn.Module, images: Tensor, labels: Tensor, defense: DefenseSpec, *,
                    rounds: int, batch_size: int, lr: float, local_steps: int, seed: int,
                    normalization: Normalization | None = None,
                    progress: Callable[[int, int], None] | None = None
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """``rounds`` rounds of one-client FL under ``defense``; returns the model and last report."""
    from gradleak.simulate import simulate

    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=gen)
    report: dict[str, Any] = {}
    per_epoch = max(len(images) // batch_size, 1)
    for r in range(rounds):
        if r and r % per_epoch == 0:
            order = torch.randperm(len(images), generator=gen)
        idx = order[(r % per_epoch) * batch_size:(r % per_epoch + 1) * batch_size]
        obs, _ = simulate(model.train(), images[idx], labels[idx], defense=defense,
                          local_steps=local_steps, local_lr=lr, seed=seed * 1_000_003 + r,
                          normalization=normalization)
        model = copy.deepcopy(obs.model)  # the model as sent (wrapped by a model defense)
        step = -lr if obs.kind == "gradient" else 1.0
        with torch.no_grad():
            for (_, p), u in zip(trainable_parameters(model), obs.update, strict=True):
                p.add_(u, alpha=step)
        report = dict(obs.defense_report or {})
        if progress is not None:
            progress(r + 1, rounds)
    return model, report


def utility(model_factory: Callable[[], nn.Module], dataset: DatasetSpec,
            defense: DefenseSpec, *, size: int = 16, channels: int | None = None,
            epochs: float = 1.0, batch_size: int = 32, lr: float = 0.1, local_steps: int = 1,
            seed: int = 0, normalization: Normalization | None = None,
            clean_accuracy: float | None = None,
            progress: Callable[[int, int], None] | None = None) -> UtilityResult:
    """Trains ``model_factory()`` briefly with and without ``defense``; reports both accuracies.

    Args:
        model_factory: builds the (untrained) model; called once, the weights are copied.
        dataset: a registered name with ``train``/``holdout`` splits (``"digits"``) or tensors.
        defense: the defense (name, dict, description or :class:`Defense`).
        size: image side for a named dataset.
        channels: channels for a named dataset (None: its own).
        epochs: passes over the training split (fractions allowed).
        batch_size: the client's batch per round.
        lr: the server's step on a FedSGD gradient, or the client's local learning rate.
        local_steps: 1 (FedSGD) or more (FedAvg).
        seed: seed of batch order and of the defense's randomness.
        normalization: applied before the model.
        clean_accuracy: the baseline's accuracy from an earlier call with the same model,
            data and training settings (skips the clean run).
        progress: ``progress(done, total)`` called after every round.

    Returns:
        A :class:`UtilityResult`.

    Example:
        >>> import gradleak as gl
        >>> res = gl.defenses.utility(lambda: gl.models.create("lenet5", in_shape=(1, 16, 16)),
        ...     "digits", {"name": "noise", "sigma": 0.1}, epochs=0.1)   # doctest: +SKIP
        >>> res.accuracy_clean, res.accuracy_defended                     # doctest: +SKIP
    """
    dfn = resolve(defense)
    if batch_size < 1 or epochs <= 0 or not lr > 0:
        raise ConfigError("utility: batch_size >= 1, epochs > 0 and lr > 0 are required")
    xtr, ytr, xte, yte = split_data(dataset, size, channels)
    rounds = training_rounds(len(xtr), epochs, batch_size)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    initial = model_factory()
    acc0 = accuracy(copy.deepcopy(initial), xte, yte, normalization)
    total = rounds if clean_accuracy is not None else 2 * rounds

    def part(offset: int) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, _n: progress(offset + done, total)

    def train(d: Any, offset: int) -> tuple[nn.Module, dict[str, Any]]:
        return train_federated(copy.deepcopy(initial), xtr, ytr, d, rounds=rounds,
                               batch_size=batch_size, lr=lr, local_steps=local_steps,
                               seed=seed, normalization=normalization, progress=part(offset))

    if clean_accuracy is None:
        clean_accuracy = accuracy(train(None, 0)[0], xte, yte, normalization)
    defended, report = train(dfn, total - rounds)
    return UtilityResult(
        defense=dfn.describe() if dfn else None,
        accuracy_clean=float(clean_accuracy),
        accuracy_defended=accuracy(defended, xte, yte, normalization),
        accuracy_initial=acc0,
        rounds=rounds,
        report=report,
        seconds=time.perf_counter() - t0,
    )
