"""GradInversion's batch label restoration (Yin et al., CVPR 2021), unique labels only.

Yin et al., "See through Gradients: Image Batch Recovery via GradInversion", CVPR 2021,
Sec. 3.2: with non-negative penultimate features, a class that occurs in the batch has a
row of the last-layer weight gradient with strongly negative entries (its samples contribute
``-(1 - p) h / B``), while an absent class receives only the non-negative ``p h / B`` terms.
The labels are the ``B`` classes whose rows have the most negative minimum::

    y_hat = argsort_n( min_m dL/dW_{n, m} )[:B]

Example:
    >>> import torch
    >>> import gradleak as gl
    >>> model = gl.models.create("mlp", depth=2, width=64, in_shape=(3, 8, 8))
    >>> x = torch.rand(4, 3, 8, 8); y = torch.tensor([1, 3, 5, 7])
    >>> obs, _ = gl.simulate(model, x, y)
    >>> gl.recover_labels(obs, strategy="yin").tolist()
    [1, 3, 5, 7]
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import torch
from torch import Tensor

from gradleak.errors import ThreatModelError
from gradleak.labels.base import LABEL_STRATEGIES, LabelStrategy, register_label_strategy
from gradleak.labels.common import (
    last_layer,
    require_batch_size,
    require_cross_entropy,
    require_nonnegative_features,
)
from gradleak.types import Observation


class YinAssumptionWarning(UserWarning):
    """The update violates the sign premise of ``yin``; another strategy was used."""


@register_label_strategy("yin")
class YinLabels(LabelStrategy):
    """GradInversion label restoration: the ``B`` most negative row minima of dL/dW_fc.

    The sign argument also needs every present class to outweigh what the other samples'
    softmax puts on it. A confident untrained model (DLG's sigmoid LeNet puts most of the
    mass on one class for every input) breaks that: a present class's row can be
    non-negative and a confident absent class is picked instead. The method's own premise
    is testable on the update: exactly ``B`` rows must have a negative minimum (absent
    classes have none with non-negative features). When that count differs from ``B`` the
    label set is not identified by this rule, and :meth:`recover` warns
    (:class:`YinAssumptionWarning`) and returns the ``fallback`` strategy's labels instead
    (or raises when ``fallback`` is None).

    Args:
        check_assumptions: probe the model and refuse when its last-layer inputs can be
            negative (the sign argument then fails).
        approximate_fedavg: accept a multi-step FedAvg delta as ``-delta / (lr * steps)``.
        fallback: strategy used when the update violates the sign premise (default
            ``"ilrg"``, which counts labels from the update without the sign argument);
            None raises :class:`~gradleak.errors.ThreatModelError` instead.
    """

    assumptions: ClassVar[str] = (
        "labels are unique within the batch (batch_size <= num_classes); batch size known; "
        "non-negative inputs to the last linear layer (ReLU/sigmoid features); softmax "
        "cross-entropy; the model need not be untrained, but accuracy drops as it trains. "
        "FedAvg: one local step over the full batch is exact, more steps only with "
        "approximate_fedavg=True."
    )

    def __init__(
        self,
        *,
        check_assumptions: bool = True,
        approximate_fedavg: bool = False,
        fallback: str | None = "ilrg",
    ):
        self.check_assumptions = check_assumptions
        self.approximate_fedavg = approximate_fedavg
        if fallback is not None:
            LABEL_STRATEGIES.get(fallback)  # unknown names fail here, not mid-attack
        self.fallback = fallback

    def scores(self, obs: Observation) -> Tensor:
        """Per-class minimum of the weight-gradient row, (K,); more negative = more likely."""
        layer = last_layer(obs, self.name, approximate_fedavg=self.approximate_fedavg)
        return layer.weight_grad.min(dim=1).values

    def recover(self, obs: Observation) -> Tensor:
        """Returns the ``B`` recovered (unique, sorted) labels as int64.

        Raises:
            ThreatModelError: batch size unknown, larger than the number of classes, a loss
                other than cross-entropy, or (with ``check_assumptions``) negative features.
        """
        batch = require_batch_size(obs, self.name)
        require_cross_entropy(obs, self.name)
        if batch > obs.num_classes:
            raise ThreatModelError(
                f"label strategy 'yin' recovers unique labels, but the batch ({batch}) is larger "
                f"than the number of classes ({obs.num_classes}), so labels must repeat; use "
                "'ilrg' or 'llg', which count repeated labels"
            )
        if self.check_assumptions:
            require_nonnegative_features(obs, self.name)
        minima = self.scores(obs)
        negative = self.negative_rows(minima)
        if self.check_assumptions and negative != batch:
            problem = (
                f"label strategy 'yin' assumes exactly one negative-minimum row per present "
                f"class, but this update has {negative} such rows for a batch of {batch} "
                "(typical of a confident untrained softmax, e.g. DLG's sigmoid LeNet); its "
                "label set is not identified by the sign rule"
            )
            if self.fallback is None:
                raise ThreatModelError(problem + "; use strategy='ilrg' or 'llg'")
            warnings.warn(f"{problem}; using {self.fallback!r} instead", YinAssumptionWarning,
                          stacklevel=2)
            labels = LABEL_STRATEGIES.get(self.fallback)().recover(obs)
            return torch.sort(labels).values.to(torch.int64)
        chosen = torch.argsort(minima, stable=True)[:batch]
        return torch.sort(chosen).values.to(torch.int64)

    @staticmethod
    def negative_rows(minima: Tensor) -> int:
        """Rows whose minimum is negative beyond the rounding level of the gradient."""
        level = 64 * torch.finfo(minima.dtype).eps * float(minima.abs().max())
        return int((minima < -level).sum())
