"""Secure aggregation over N simulated clients: the server sees only the sum or the mean.

Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine Learning", CCS
2017: pairwise masks cancel in the sum, so the server learns the aggregate of the N clients'
updates and nothing else. The simulation splits the private batch of N x B images into N
clients of B images (in order), runs each client (with ``client_defense`` if given, seeded
``seed + i``) and shares the aggregate; an attack then faces a batch of N x B. The masks
themselves are not simulated: they cancel exactly, so the aggregate is all the server gets.
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
    check_choice,
    register_defense,
    run_client,
)
from gradleak.errors import ConfigError

REDUCTIONS = ("mean", "sum")


@register_defense("secagg")
@dataclass(frozen=True)
class SecureAggregation(Defense):
    """The server sees the aggregate of ``clients`` simulated clients.

    Attributes:
        clients: N, the number of clients (the private batch must split into N equal parts).
        reduce: ``mean`` (FedAvg's weighting for equal client sizes) or ``sum``.
        client_defense: a defense every client applies first (``{"name": ..., ...}``).

    Example:
        >>> import gradleak as gl
        >>> x, y = gl.data.load("sample", size=32, n=4, seed=0)
        >>> obs, _ = gl.simulate(gl.models.create("lenet"), x, y,
        ...                      defense={"name": "secagg", "clients": 2})
        >>> obs.batch_size
        4
    """

    clients: int = 2
    reduce: str = "mean"
    client_defense: dict[str, Any] | None = None
    stage = "aggregation"
    ranges = {"clients": Interval(1, 1e5, integer=True)}

    def validate(self) -> None:
        super().validate()
        check_choice(self.name, "reduce", self.reduce, REDUCTIONS)
        inner = self.inner()
        if isinstance(inner, SecureAggregation):
            raise ConfigError("defense 'secagg': client_defense cannot be secagg itself")

    def inner(self) -> Defense | None:
        """The per-client defense, if any."""
        from gradleak.defenses.spec import resolve

        if self.client_defense is not None and not isinstance(self.client_defense, dict):
            raise ConfigError("defense 'secagg': client_defense must be a dict like "
                              "{'name': 'noise', 'sigma': 0.01}")
        return resolve(self.client_defense)

    def run_client(self, model: nn.Module, images: Tensor, labels: Tensor,
                   setup: ClientSetup) -> ClientResult:
        n = int(self.clients)
        if len(images) % n:
            raise ConfigError(f"defense 'secagg': the batch of {len(images)} images does not "
                              f"split into {n} clients of equal size")
        b = len(images) // n
        inner = self.inner()
        results = [
            run_client(inner, model, images[i * b:(i + 1) * b], labels[i * b:(i + 1) * b],
                       _reseeded(setup, setup.seed + i))
            for i in range(n)
        ]
        total = [torch.stack(parts).sum(dim=0) for parts in
                 zip(*(r.update for r in results), strict=True)]
        if self.reduce == "mean":
            total = [t / n for t in total]
        report: dict[str, Any] = {"clients": n, "client_batch": b}
        if results[0].report:
            report.update(results[0].report)
        return ClientResult(results[0].model, total, results[0].kind, report)


def _reseeded(setup: ClientSetup, seed: int) -> ClientSetup:
    from dataclasses import replace

    return replace(setup, seed=seed)
