"""LLG-style label counting from last-layer gradient sums (Wainakh et al., PETS 2022).

Wainakh, Ventola, Müßig, Keim, Garcia Cordero, Zimmer, Grube, Kersting & Mühlhäuser,
"User-Level Label Leakage from Gradients in Federated Learning", PoPETs 2022(2).

With non-negative features, the row sum ``g_c = sum_m dL/dW_{c,m}`` of the last-layer weight
gradient is (Property 1) negative for the classes in the batch, and (Property 2) shifts by a
roughly constant *impact* ``m < 0`` per instance of the class on top of an *offset* ``s_c``::

    g_c ~= s_c + n_c * m

The attack: (1) every class with ``g_c < 0`` gets one instance and ``g_c -= m``; (2) the
offset is removed and, until ``B`` labels are chosen, the class with the smallest ``g_c``
gets one more instance and ``g_c -= m``.

Two ways to estimate ``m`` and ``s`` (``variant``):

* ``"llg"``: from the gradient alone, as in the paper's basic attack:
  ``m = (1 + 1/K) * sum_{g_c < 0} g_c / B`` and ``s = 0``.
* ``"llg+"``: from the server's model on dummy inputs (uniform noise, or ``auxiliary`` images
  when the attacker has some, as in the paper's LLG+). For inputs with features ``h_j``,
  sums ``S_j = sum_m h_jm`` and softmax ``p_j``, every sample adds ``p_jc S_j / B`` to
  ``g_c`` whatever its label and its own class additionally receives ``-S_j / B``; hence
  ``s_c = mean_j p_jc S_j`` and ``m = -mean_j S_j / B``. This derivation is ours (gradleak's
  adaptation of the paper's model-based estimate), not a transcription.

Example:
    >>> import torch
    >>> import gradleak as gl
    >>> model = gl.models.create("mlp", depth=2, width=64, in_shape=(3, 8, 8))
    >>> x = torch.rand(6, 3, 8, 8); y = torch.tensor([2, 2, 2, 5, 5, 9])
    >>> obs, _ = gl.simulate(model, x, y)
    >>> gl.recover_labels(obs, strategy="llg").tolist()   # doctest: +SKIP
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
from torch import Tensor, nn

from gradleak.errors import ConfigError, ObservationError, ThreatModelError
from gradleak.labels.base import LabelStrategy, register_label_strategy
from gradleak.labels.common import (
    find_classifier,
    last_layer,
    require_batch_size,
    require_cross_entropy,
    require_nonnegative_features,
)
from gradleak.types import Observation

VARIANTS = ("llg", "llg+")


@register_label_strategy("llg")
class LLGLabels(LabelStrategy):
    """LLG / LLG+ label counting (Wainakh et al., PETS 2022).

    Args:
        variant: ``"llg"`` (impact from the gradient) or ``"llg+"`` (impact and per-class
            offset from the model on dummy or auxiliary inputs).
        auxiliary: (N, C, H, W) images in [0, 1] the attacker owns, used by ``"llg+"``
            instead of uniform noise (never the client's batch).
        probes: number of dummy inputs for ``"llg+"`` when no auxiliary images are given.
        seed: seed of the dummy inputs.
        check_assumptions: probe the model and refuse when its last-layer inputs can be
            negative (the sign argument then fails).
        approximate_fedavg: accept a multi-step FedAvg delta as ``-delta / (lr * steps)``.
    """

    assumptions: ClassVar[str] = (
        "non-negative inputs to the last linear layer (ReLU/sigmoid features); batch size "
        "known; softmax cross-entropy; untrained or early-training model (the impact of one "
        "instance is then roughly the same for every sample). No bias needed. FedAvg: one "
        "local step over the full batch is exact, more steps only with "
        "approximate_fedavg=True."
    )

    def __init__(
        self,
        *,
        variant: str = "llg",
        auxiliary: Tensor | None = None,
        probes: int = 64,
        seed: int = 0,
        check_assumptions: bool = True,
        approximate_fedavg: bool = False,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"llg variant must be one of {VARIANTS}, not {variant!r}")
        if probes < 1:
            raise ConfigError("llg probes must be >= 1")
        if auxiliary is not None and (auxiliary.dim() != 4 or not auxiliary.is_floating_point()):
            raise ConfigError("llg auxiliary images must be a float (N, C, H, W) tensor in [0, 1]")
        self.variant = variant
        self.auxiliary = auxiliary
        self.probes = probes
        self.seed = seed
        self.check_assumptions = check_assumptions
        self.approximate_fedavg = approximate_fedavg

    def gradient_sums(self, obs: Observation) -> Tensor:
        """``g_c``: row sums of the last-layer weight gradient, (K,) float64."""
        layer = last_layer(obs, self.name, approximate_fedavg=self.approximate_fedavg)
        return layer.weight_grad.sum(dim=1)

    def impact_and_offset(self, obs: Observation, g: Tensor | None = None) -> tuple[float, Tensor]:
        """The impact ``m`` (a negative float) and offsets ``s`` (K,) of the chosen variant."""
        batch = require_batch_size(obs, self.name)
        g = self.gradient_sums(obs) if g is None else g
        k = len(g)
        if self.variant == "llg":
            m = float(g.clamp(max=0.0).sum()) * (1.0 + 1.0 / k) / batch
            return m, torch.zeros(k, dtype=torch.float64)
        feats, probs = self._dummy_features(obs)
        sums = feats.sum(dim=1)
        offset = (probs * sums[:, None]).mean(dim=0)
        return -float(sums.mean()) / batch, offset

    def _dummy_features(self, obs: Observation) -> tuple[Tensor, Tensor]:
        """Last-layer inputs (N, m) and softmax outputs (N, K) of the model on dummy data."""
        if self.auxiliary is not None:
            x = self.auxiliary.detach()
            if tuple(x.shape[1:]) != tuple(obs.data_shape):
                raise ObservationError(
                    f"llg auxiliary images have shape {tuple(x.shape[1:])}, the model expects "
                    f"{tuple(obs.data_shape)}"
                )
        else:
            gen = torch.Generator().manual_seed(self.seed)
            x = torch.rand(self.probes, *obs.data_shape, generator=gen)
        x = x.to(obs.update[0].device)
        model = copy.deepcopy(obs.model)
        model.train(obs.train_mode)
        _, fc = find_classifier(model)
        captured: list[Tensor] = []

        def hook(_mod: nn.Module, args: tuple[Tensor, ...]) -> None:
            captured.append(args[0].detach())

        handle = fc.register_forward_pre_hook(hook)
        try:
            with torch.no_grad():
                logits = model(obs.normalize(x))
        finally:
            handle.remove()
        feats = captured[-1].reshape(len(x), -1).to(torch.float64)
        return feats, torch.softmax(logits.to(torch.float64), dim=1)

    def recover(self, obs: Observation) -> Tensor:
        """Returns (B,) int64 labels, sorted by class, repeats allowed.

        Raises:
            ThreatModelError: batch size unknown, a loss other than cross-entropy, no class
                with a negative gradient sum, negative features (with ``check_assumptions``),
                or a FedAvg delta that is not one full-batch step.
        """
        batch = require_batch_size(obs, self.name)
        require_cross_entropy(obs, self.name)
        if self.check_assumptions:
            require_nonnegative_features(obs, self.name)
        g = self.gradient_sums(obs)
        m, offset = self.impact_and_offset(obs, g)
        if not m < 0.0:
            raise ThreatModelError(
                "label strategy 'llg' found no negative impact (no class has a negative "
                "gradient sum); the update carries no label signal it can read"
            )
        return llg_assign(g, m, offset, batch)


def llg_assign(g: Tensor, impact: float, offset: Tensor, batch: int) -> Tensor:
    """LLG's two-stage assignment of ``batch`` labels from gradient sums.

    Stage 1 gives one instance to every class with ``g_c < 0`` (at most ``batch`` of them,
    most negative first) and subtracts the impact; stage 2 removes the offset and gives the
    remaining instances one by one to the class with the smallest adjusted sum.

    Args:
        g: (K,) row sums of the last-layer weight gradient.
        impact: the (negative) change of ``g_c`` per instance of class ``c``.
        offset: (K,) per-class offsets ``s_c``.
        batch: number of labels to return.

    Returns:
        (batch,) int64 labels sorted by class.
    """
    work = g.detach().to(torch.float64).clone()
    counts = torch.zeros(len(work), dtype=torch.int64)
    negative = torch.nonzero(work < 0).flatten()
    negative = negative[torch.argsort(work[negative], stable=True)][:batch]
    counts[negative] += 1
    work[negative] -= impact
    work = work - offset.to(torch.float64)
    for _ in range(batch - int(counts.sum())):
        c = int(torch.argmin(work))
        counts[c] += 1
        work[c] -= impact
    return torch.repeat_interleave(torch.arange(len(counts)), counts)
