"""iLRG: instance-wise batch label restoration, with repeated labels (Ma et al., ICLR 2023).

Ma, Wu, Zhang, Zhang, Feng, Zhou & Sun, "Instance-wise Batch Label Restoration via Gradients
in Federated Learning", ICLR 2023 (official code: github.com/BUAA-CST/iLRG).

For a mean cross-entropy loss with last layer ``z = W h + b`` the bias and weight gradients of
class ``c`` are ``dL/db_c = (1/B) sum_j (p_jc - y_jc)`` and ``dL/dW_c = (1/B) sum_j (p_jc -
y_jc) h_j``. The method:

1. *Class-wise embeddings*: ``h_c = dL/dW_c / dL/db_c`` is a weighted mean of the features,
   dominated by the class-``c`` samples when class ``c`` is present (their weights are
   ``p - 1``, the others' ``p``).
2. *Class-wise probabilities*: ``P[c] = softmax(W h_c + b)`` with the server's last layer.
3. *Counts*: approximating every class-``c`` sample by ``P[c]``, the bias gradient reads
   ``B dL/db_i = sum_c n_c (P[c, i] - [c == i])``; with ``sum_c n_c = B`` this is a linear
   system in the per-class counts ``n`` (K + 1 equations), solved by the Moore-Penrose
   pseudoinverse, then clipped at zero and rounded to integers that sum to ``B``.

It is exact when all samples share one feature vector (then every ``h_c`` equals it) and very
accurate for untrained models, where samples of a class have similar probabilities.

Faithful to the official code (``methods.py`` / ``utils.py`` of BUAA-CST/iLRG): the same
ratio (theirs caps it through the decimal exponents, ours by ``max_embedding``), the same
``softmax(fc(h_c))`` with no temperature, the same ``K + 1`` equations and pseudoinverse,
negative counts set to zero. Differences: float64 throughout, and the counts are rounded by
the largest-remainder rule so that they sum to ``B`` (the paper scores the plain rounding,
whose sum may differ from ``B``).

gradleak addition (``refine``, on by default; ``refine=0`` is the paper's method): when a
class occurs about as often as the model predicts it, ``dL/db_c ~ 0`` and the ratio of step 1
extrapolates wildly, its softmax saturates and the solve puts many instances on that class.
:func:`conditioned_probabilities` detects those rows and replaces them by the typical output
of the well-conditioned rows, then solves again.

Measured (untrained models, 20 seeds each, bundled photos, mean count / existence accuracy
over all K classes as in the paper):

* the paper's models -- ``lenet5`` (its LeNet-5; CIFAR-100 setting: 100 classes) and FCN-3
  (``mlp``, depth 3, width 300) -- and a 2-layer ReLU MLP: 1.000 / 1.000 at batch 24 with
  10 or 100 classes, labels from 2 or 3 classes or uniform; at batch 128: 1.000 with 100
  classes or labels from 2 classes. With 10 classes and uniform labels at 128 (every class
  present ~13 times, ``dL/db ~ 0`` for most classes) 0.9-1.0, but down to ~0.5 for the MLP
  when the batch is ~13 near-copies of the same few photos per class; the official code
  logs 0.386 for FCN-3 / MNIST at 128.
* DLG's sigmoid ``lenet`` (uniform(-0.5, 0.5) weights): 1.000 at batch 24 with 100 classes,
  but only ~0.96-0.97 count / ~0.98-0.99 existence accuracy with 10 classes (0.85-0.93 at
  128). Untrained, this model is already confident (mean max-probability 0.6-0.95, logit
  range ~10-18), so the class-wise embedding of a present class that the model also predicts
  mixes samples of other classes with large weights, and ``softmax`` of a mean embedding is
  not the mean ``softmax``; both approximations of the method break, not the solve (with the
  true class-wise mean probabilities the same system is exact).

Example:
    >>> import torch
    >>> import gradleak as gl
    >>> model = gl.models.create("mlp", depth=2, width=64, in_shape=(3, 8, 8))
    >>> x = torch.rand(6, 3, 8, 8); y = torch.tensor([2, 2, 2, 5, 5, 9])
    >>> obs, _ = gl.simulate(model, x, y)
    >>> gl.recover_labels(obs, strategy="ilrg").tolist()
    [2, 2, 2, 5, 5, 9]
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from gradleak.errors import ConfigError
from gradleak.labels.base import LabelStrategy, register_label_strategy
from gradleak.labels.common import (
    LastLayer,
    counts_to_labels,
    integer_counts,
    last_layer,
    require_batch_size,
    require_cross_entropy,
    require_softmax_bias_gradient,
)
from gradleak.types import Observation


@register_label_strategy("ilrg")
class ILRGLabels(LabelStrategy):
    """iLRG (Ma et al., ICLR 2023): per-class counts by a least-squares solve.

    Args:
        approximate_fedavg: accept a multi-step FedAvg delta as ``-delta / (lr * steps)``.
        max_embedding: magnitude cap of the recovered embeddings (a class whose bias gradient
            is almost zero would otherwise give an unbounded ratio).
        rcond: relative cut-off of small singular values in the pseudoinverse (None: torch's
            default, as numpy's ``pinv``).
        refine: rounds of gradleak's conditioning fix (:func:`conditioned_probabilities`);
            0 gives the paper's method exactly.
        kappa_max: amplification above which a class-wise embedding is not trusted.
        kappa_relative: when no embedding passes ``kappa_max``, those within this factor of
            the best-conditioned one are trusted (see :func:`conditioned_probabilities`).
    """

    assumptions: ClassVar[str] = (
        "the last layer is nn.Linear with a bias (the bias gradient is required); batch size "
        "known; softmax cross-entropy; most accurate on untrained models, where the samples "
        "of one class give similar softmax outputs. Negative features (leaky ReLU, swish) are "
        "tolerated. FedAvg: one local step over the full batch is exact, more steps only "
        "with approximate_fedavg=True."
    )

    def __init__(
        self,
        *,
        approximate_fedavg: bool = False,
        max_embedding: float = 1e8,
        rcond: float | None = None,
        refine: int = 3,
        kappa_max: float = 4.0,
        kappa_relative: float = 2.0,
    ) -> None:
        if refine < 0 or kappa_max <= 0 or kappa_relative < 1:
            raise ConfigError("ilrg needs refine >= 0, kappa_max > 0 and kappa_relative >= 1")
        self.refine = int(refine)
        self.kappa_max = float(kappa_max)
        self.kappa_relative = float(kappa_relative)
        self.approximate_fedavg = approximate_fedavg
        self.max_embedding = float(max_embedding)
        self.rcond = rcond

    # ------------------------------------------------------------------ the three steps
    def _layer(self, obs: Observation) -> LastLayer:
        require_cross_entropy(obs, self.name)
        layer = last_layer(obs, self.name, approximate_fedavg=self.approximate_fedavg)
        require_softmax_bias_gradient(layer, self.name)
        return layer

    def embeddings(self, obs: Observation) -> Tensor:
        """Step 1: class-wise embeddings ``dL/dW_c / dL/db_c``, (K, m) float64."""
        return self._embeddings(self._layer(obs))

    def _embeddings(self, layer: LastLayer) -> Tensor:
        assert layer.bias_grad is not None
        gb = layer.bias_grad
        tiny = torch.finfo(torch.float64).tiny
        safe = torch.where(gb.abs() > tiny, gb, torch.full_like(gb, tiny))
        emb = layer.weight_grad / safe[:, None]
        cap = self.max_embedding
        return torch.nan_to_num(emb, nan=0.0, posinf=cap, neginf=-cap).clamp(-cap, cap)

    def probabilities(self, obs: Observation) -> Tensor:
        """Step 2: ``P[c] = softmax(W h_c + b)``, (K, K) float64 (row c: class-c samples)."""
        layer = self._layer(obs)
        return self._probabilities(layer, self._embeddings(layer))

    @staticmethod
    def _probabilities(layer: LastLayer, emb: Tensor) -> Tensor:
        w = layer.module.weight.detach().to(torch.float64)
        b = layer.module.bias
        logits = emb @ w.T
        if b is not None:
            logits = logits + b.detach().to(torch.float64)
        return torch.softmax(logits, dim=1)

    def estimate_counts(self, obs: Observation) -> Tensor:
        """Step 3: the real-valued least-squares counts per class, (K,) float64."""
        batch = require_batch_size(obs, self.name)
        layer = self._layer(obs)
        assert layer.bias_grad is not None
        gb = layer.bias_grad
        probs = self._probabilities(layer, self._embeddings(layer))
        counts = solve_counts(probs, gb, batch, rcond=self.rcond)
        for _ in range(self.refine):
            fixed = conditioned_probabilities(
                probs, gb, counts, batch, self.kappa_max, self.kappa_relative
            )
            new = solve_counts(fixed, gb, batch, rcond=self.rcond)
            if torch.allclose(new, counts, atol=1e-9, rtol=0.0):
                break
            counts = new
        return counts

    def recover(self, obs: Observation) -> Tensor:
        """Returns (B,) int64 labels, sorted by class, repeats allowed.

        Raises:
            ThreatModelError: batch size unknown, no bias on the last layer, a loss other
                than cross-entropy, a FedAvg delta that is not one full-batch step, or a
                bias gradient that a defense altered (it no longer sums to zero).
        """
        batch = require_batch_size(obs, self.name)
        return counts_to_labels(integer_counts(self.estimate_counts(obs), batch))


def conditioned_probabilities(
    probs: Tensor,
    bias_grad: Tensor,
    counts: Tensor,
    batch: int,
    kappa_max: float,
    kappa_relative: float = 2.0,
) -> Tensor:
    """Replaces the class-wise probabilities whose embeddings were badly extrapolated.

    gradleak's addition to iLRG (not in the paper). The ratio ``dL/dW_c / dL/db_c`` is a
    weighted mean of the features with weights ``w_jc = p_jc - y_jc``; its error grows with
    the amplification ``kappa_c = sum_j |w_jc| / |sum_j w_jc|``, which explodes when a class
    occurs about as often as the model predicts it (``n_c ~ sum_j p_jc``, so ``dL/db_c ~ 0``)
    and the softmax of the extrapolated embedding saturates. With the current counts ``n``
    the batch-mean probability is known exactly, ``p_bar = dL/db + n / B``, which gives
    ``sum_j |w_jc| ~ B p_bar_c + n_c (1 - 2 p_bar_c)``. Rows with ``kappa_c > kappa_max`` are
    replaced by the ``1/kappa``-weighted mean of the trusted rows: for untrained models,
    whose outputs depend little on the input, the typical output is a good stand-in for any
    class's mean output.

    When no row passes ``kappa_max`` (every class present about as often as predicted, e.g.
    10 classes and a batch of 128 with random labels), the rows whose amplification is within
    a factor ``kappa_relative`` of the smallest one are trusted instead. (Replacing every row
    by ``p_bar`` would not help: ``p_bar`` is computed from ``n``, so the solve would return
    ``n`` unchanged.)

    Args:
        probs: (K, K) class-wise probabilities from the embeddings.
        bias_grad: (K,) last-layer bias gradient.
        counts: (K,) current real-valued count estimate.
        batch: the batch size B.
        kappa_max: largest amplification whose row is kept.
        kappa_relative: when no row passes ``kappa_max``, rows with ``kappa <= kappa_relative
            * min(kappa)`` are trusted.

    Returns:
        (K, K) probabilities with the ill-conditioned rows replaced.
    """
    b = float(batch)
    gb = bias_grad.to(torch.float64)
    n = counts.to(torch.float64).clamp(0.0, b)
    p_bar = (gb + n / b).clamp(min=0.0)
    p_bar = p_bar / p_bar.sum().clamp(min=torch.finfo(torch.float64).tiny)
    spread = b * p_bar + n * (1.0 - 2.0 * p_bar)
    kappa = spread / (b * gb).abs().clamp(min=1e-12)
    good = kappa <= kappa_max
    if not bool(good.any()):
        good = kappa <= kappa_relative * kappa.min()
    out = probs.to(torch.float64).clone()
    bad = ~good
    if bool(bad.any()) and bool(good.any()):
        # trusted rows (absent classes above all: their ratio is a positively weighted mean
        # of every feature) estimate the typical output without using n
        w = 1.0 / kappa[good]
        out[bad] = (out[good] * w[:, None]).sum(0) / w.sum()
    return out


def solve_counts(
    probs: Tensor, bias_grad: Tensor, batch: int, *, rcond: float | None = None
) -> Tensor:
    """Least-squares per-class counts from class-wise probabilities (iLRG's linear system).

    Solves ``[1^T; P^T - I] n = [B; B * dL/db]`` with the Moore-Penrose pseudoinverse.

    Args:
        probs: (K, K); row ``c`` is the softmax output attributed to class-``c`` samples.
        bias_grad: (K,) gradient of the mean loss w.r.t. the last-layer bias.
        batch: the batch size B.
        rcond: pseudoinverse cut-off (None: torch's default).

    Returns:
        (K,) float64 real-valued counts (may be slightly negative or fractional).
    """
    p = probs.to(torch.float64)
    k = p.shape[0]
    eye = torch.eye(k, dtype=torch.float64, device=p.device)
    a = torch.cat([torch.ones(1, k, dtype=torch.float64, device=p.device), p.T - eye], dim=0)
    rhs = torch.cat(
        [
            torch.tensor([float(batch)], dtype=torch.float64, device=p.device),
            float(batch) * bias_grad.to(torch.float64),
        ]
    )
    pinv = torch.linalg.pinv(a) if rcond is None else torch.linalg.pinv(a, rtol=rcond)
    return pinv @ rhs
