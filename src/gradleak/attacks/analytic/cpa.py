"""The Cocktail Party Attack (``cpa``): large batches unmixed by independent component analysis.

Kariyappa, Guo, Elkind, Cilingir, Aggarwal, Isik & Nagarajan, "Cocktail Party Attack:
Breaking Aggregation-Based Privacy in Federated Learning Using Independent Component
Analysis", ICML 2023. For a fully connected first layer ``Z = W X + b``, every row of the
weight gradient ``dL/dW = (dL/dZ) X`` is a linear mixture of the ``B`` private inputs (the
rows of ``X``): the gradient is a "cocktail party" of ``B`` speakers recorded by one
microphone per neuron. Natural images are non-Gaussian and mutually independent, so
independent component analysis recovers them up to a sign, a scale and (after centring) an
offset per image. The paper's unmixing maximises non-Gaussianity (negentropy) under
decorrelation; here that is scikit-learn's :class:`~sklearn.decomposition.FastICA`
(Hyvärinen & Oja, 2000; logcosh negentropy contrast), not a hand-written ICA.

The paper fixes sign and scale with a prior; with the bias gradient in the update they are
determined exactly instead: ``dL/dW^T = S C Dz^T + 1 m^T Dz^T`` (``S`` the centred sources
FastICA returns, ``C`` their scales, ``m`` the image means), FastICA's mixing matrix is
``Dz C`` and its mean ``Dz m``, and ``dL/db = Dz 1`` gives ``C^{-1} 1`` and then ``m`` by
least squares. The attack is approximate (ICA error grows with the batch), it needs the
first layer to have at least ``B`` neurons, and it recovers no labels.

Example:
    >>> model = gl.models.create("mlp", depth=2, width=512)              # doctest: +SKIP
    >>> obs, truth = gl.simulate(model, x256, y256)                      # doctest: +SKIP
    >>> rec = gl.reconstruct(obs, attack="cpa")                          # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gradleak.attacks.analytic._common import find_first_linear, observed_gradients, param_gradient
from gradleak.attacks.analytic.base import AnalyticAttack, AnalyticResult
from gradleak.attacks.base import Callback, register_attack
from gradleak.errors import ThreatModelError
from gradleak.types import Observation


def rescale_sources(
    sources: np.ndarray, mixing: np.ndarray, mean: np.ndarray, bias_grad: np.ndarray
) -> np.ndarray:
    """Inputs from centred sources, using the bias gradient to fix sign, scale and offset.

    Args:
        sources: (n_features, B) centred sources (one column per recovered input).
        mixing: (out, B) mixing matrix with ``grad_W^T ~ sources @ mixing.T + mean``.
        mean: (out,) the per-neuron mean removed before unmixing.
        bias_grad: (out,) the first layer's bias gradient ``Dz 1``.

    Returns:
        (B, n_features) recovered inputs ``x_j = (s_j + u_j) / c_j`` with ``c = C^{-1} 1``
        from ``mixing c = dL/db`` and ``u = C^{-1} m`` from ``mixing u = mean``.
    """
    c = np.linalg.lstsq(mixing, bias_grad, rcond=None)[0]
    u = np.linalg.lstsq(mixing, mean, rcond=None)[0]
    c = np.where(np.abs(c) > 1e-300, c, 1e-300)
    return ((sources + u[None, :]) / c[None, :]).T


@register_attack("cpa")
class CocktailParty(AnalyticAttack):
    """Approximate recovery of a large batch from a fully connected first layer, by ICA.

    Returns ``B`` images (one per private image, in an arbitrary order) and no labels;
    ``extras`` holds FastICA's iteration count and whether it converged.

    Reference:
        Kariyappa et al., "Cocktail Party Attack: Breaking Aggregation-Based Privacy in
        Federated Learning Using Independent Component Analysis", ICML 2023.
    """

    @dataclass(frozen=True)
    class Config:
        """Settings of the Cocktail Party Attack.

        Attributes:
            max_iter: FastICA iterations at most.
            tol: FastICA convergence tolerance.
            fun: FastICA's negentropy contrast (``logcosh``, ``exp`` or ``cube``).
        """

        max_iter: int = 1000
        tol: float = 1e-5
        fun: str = "logcosh"

    requires = frozenset({"fc_first_layer_with_bias", "gradient_or_one_step_delta",
                          "batch_size"})
    positive = frozenset({"max_iter", "tol"})

    def validate(self, cfg: Any) -> list[str]:
        """Also: ``fun`` names one of FastICA's contrasts."""
        problems = super().validate(cfg)
        if cfg.fun not in ("logcosh", "exp", "cube"):
            problems.append(f"fun must be 'logcosh', 'exp' or 'cube', not {cfg.fun!r}")
        return problems

    def solve(
        self, obs: Observation, generator: torch.Generator, callback: Callback | None
    ) -> AnalyticResult:
        """Unmixes the first layer's weight gradient into ``B`` inputs."""
        from sklearn.decomposition import FastICA
        from sklearn.exceptions import ConvergenceWarning

        cfg = self.config
        b = int(obs.batch_size or 0)
        first = find_first_linear(obs)
        grads = observed_gradients(obs)
        gw = param_gradient(grads, first.name, "weight").detach().to(torch.float64)
        gb = param_gradient(grads, first.name, "bias").detach().to(torch.float64)
        gw = gw.reshape(gw.shape[0], -1)
        if gw.shape[0] < b:
            raise ThreatModelError(
                f"at least as many first-layer neurons as the batch size for 'cpa' (ICA "
                f"needs B={b} mixtures; this layer has {gw.shape[0]}); use a wider layer"
            )
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        ica = FastICA(n_components=b, whiten="unit-variance", fun=cfg.fun,
                      max_iter=cfg.max_iter, tol=cfg.tol, random_state=seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            sources = ica.fit_transform(gw.T.numpy())
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        flat = rescale_sources(sources, ica.mixing_, ica.mean_, gb.numpy())
        extras: dict[str, Any] = {
            "layer": first.name,
            "ica_iterations": int(ica.n_iter_),
            "ica_converged": converged,
        }
        return AnalyticResult(inputs=torch.from_numpy(np.ascontiguousarray(flat)),
                              labels=None, expected=b, extras=extras)


def unmix_with(weight_grad: Tensor, bias_grad: Tensor, unmixing: Tensor) -> Tensor:
    """Inputs from a given (B, B) unmixing of the whitened gradient (a reference/control).

    Whitens ``dL/dW^T`` as FastICA does (centre, project on the top ``B`` principal
    directions, unit variance), applies ``unmixing`` and rescales with the bias gradient
    like :class:`CocktailParty`. With a random orthogonal ``unmixing`` this is the control
    that ICA must beat.

    Returns:
        (B, n_features) float64 inputs.
    """
    x = weight_grad.detach().to(torch.float64).reshape(weight_grad.shape[0], -1).T  # (n, out)
    b = unmixing.shape[0]
    mean = x.mean(dim=0)
    xc = x - mean
    u, s, vh = torch.linalg.svd(xc, full_matrices=False)
    n = x.shape[0]
    white = u[:, :b] * n**0.5  # (n, B) unit variance
    sources = white @ unmixing.to(torch.float64).T
    # xc = white @ K with K = diag(s) vh / sqrt(n); sources = white W^T -> xc = sources W K
    mixing = (unmixing.to(torch.float64) @ (s[:b, None] * vh[:b] / n**0.5)).T
    flat = rescale_sources(sources.numpy(), mixing.numpy(), mean.numpy(),
                           bias_grad.detach().to(torch.float64).numpy())
    return torch.from_numpy(np.ascontiguousarray(flat))
