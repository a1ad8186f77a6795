"""PRECODE: a variational bottleneck before the classifier, as a model wrapper.

Scheliga, Maeder & Seeland, "PRECODE - A Generic Model Extension to Prevent Deep Gradient
Leakage", WACV 2022. The feature vector f that enters the classifier passes through a
variational bottleneck: an encoder maps f to (mu, log sigma^2) of size k, a sample
``z = mu + sigma * eps`` (eps ~ N(0, I), drawn anew at every training forward pass) is
decoded back to the feature size, and the original classifier reads the decoded vector. The
training loss gains ``beta * KL(N(mu, sigma^2) || N(0, I))`` (mean over the batch). In eval
mode z = mu, so predictions are deterministic.

The federation trains the wrapped model: the observation holds it (its parameter names gain
the bottleneck's), and ``defense_report["model_changed"]`` says so. The wrapper is inserted in
front of the model's last ``nn.Linear`` (or the one named ``layer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gradleak.defenses.base import (
    ClientResult,
    ClientSetup,
    Defense,
    Interval,
    StepHooks,
    register_defense,
)
from gradleak.errors import ConfigError


class VariationalBottleneck(nn.Module):
    """f (N, F) -> decoder(z), z ~ N(mu(f), sigma(f)^2) in training, z = mu(f) in eval.

    While ``record_kl`` is set (during the client's training), ``last_kl`` holds the
    batch-mean KL divergence of the last forward pass (it is part of the autograd graph, so
    it is not kept otherwise: a module holding it could not be deep-copied).
    """

    def __init__(self, features: int, size: int) -> None:
        super().__init__()
        self.size = size
        self.encoder = nn.Linear(features, 2 * size)
        self.decoder = nn.Linear(size, features)
        self.last_kl: Tensor | None = None
        self.record_kl = False

    def forward(self, f: Tensor) -> Tensor:
        h = self.encoder(f.flatten(1))
        mu, logvar = h[:, : self.size], h[:, self.size :]
        if self.training:
            eps = torch.randn_like(mu)
            z = mu + torch.exp(0.5 * logvar) * eps
        else:
            z = mu
        self.last_kl = kl_standard_normal(mu, logvar) if self.record_kl else None
        return self.decoder(z)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` summed over dimensions, mean over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


class PrecodeHead(nn.Module):
    """The bottleneck followed by the model's original classifier."""

    def __init__(self, classifier: nn.Linear, size: int) -> None:
        super().__init__()
        self.bottleneck = VariationalBottleneck(classifier.in_features, size)
        self.classifier = classifier

    def forward(self, f: Tensor) -> Tensor:
        return self.classifier(self.bottleneck(f))


def precode_heads(model: nn.Module) -> list[PrecodeHead]:
    """The PRECODE heads inside ``model``."""
    return [m for m in model.modules() if isinstance(m, PrecodeHead)]


def wrap(model: nn.Module, size: int, layer: str | None = None) -> nn.Module:
    """Inserts a :class:`PrecodeHead` of bottleneck ``size`` in front of the classifier.

    ``model`` is modified in place (pass a copy); a model already wrapped is returned as is.
    """
    if precode_heads(model):
        return model
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("defense 'precode' needs a model whose classifier is an nn.Linear")
    chosen = [x for x in linears if x[0] == layer] if layer is not None else [linears[-1]]
    if not chosen:
        raise ConfigError(f"defense 'precode': no nn.Linear called {layer!r}; the model's are "
                          f"{[n for n, _ in linears]}")
    name, fc = chosen[0]
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    head = PrecodeHead(fc, size).to(device=fc.weight.device, dtype=fc.weight.dtype)
    setattr(parent, attr, head)
    return model


@register_defense("precode")
@dataclass(frozen=True)
class Precode(Defense):
    """The PRECODE model extension.

    Attributes:
        size: the bottleneck's latent size k (the paper uses 256).
        beta: weight of the KL term in the training loss.
        layer: the classifier ``nn.Linear`` to wrap (None: the model's last one).
        init_seed: seed of the bottleneck's initial weights (the server initialises them).
    """

    size: int = 256
    beta: float = 1e-3
    layer: str | None = None
    init_seed: int = 0
    stage = "model"
    ranges = {"size": Interval(1, 1e6, integer=True), "beta": Interval(0.0, 1e6),
              "init_seed": Interval(0, 2**63 - 1, integer=True)}

    def prepare_model(self, model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.init_seed))
            wrapped = wrap(model, int(self.size), self.layer)
        for head in precode_heads(wrapped):
            head.bottleneck.record_kl = True
        return wrapped, {"model_changed": True, "precode": f"bottleneck of size {self.size}"}

    def run_client(self, model: nn.Module, images: Tensor, labels: Tensor,
                   setup: ClientSetup) -> ClientResult:
        """Trains with the KL term; the bottleneck's noise is drawn from the run's seed."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(setup.seed)
            result = super().run_client(model, images, labels, setup)
        for head in precode_heads(result.model):
            head.bottleneck.record_kl = False
            head.bottleneck.last_kl = None
        return result

    def step_hooks(self) -> StepHooks:
        beta = float(self.beta)

        def kl(model: nn.Module) -> Tensor:
            terms = [h.bottleneck.last_kl for h in precode_heads(model)
                     if h.bottleneck.last_kl is not None]
            return beta * torch.stack(terms).sum() if terms else torch.zeros(())

        return StepHooks(regularizer=kl)
