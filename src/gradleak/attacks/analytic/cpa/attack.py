"""The Cocktail Party Attack (``cpa``): large batches unmixed by independent component analysis.

Kariyappa, Guo, Maeng, Xiong, Suh, Qureshi & Lee, "Cocktail Party Attack: Breaking
Aggregation-Based Privacy in Federated Learning Using Independent Component Analysis", ICML
2023. For a fully connected first layer ``Z = W X + b``, every row of the weight gradient
``dL/dW = Dz X`` is a linear mixture of the ``B`` private inputs: the gradient is a "cocktail
party" of ``B`` speakers recorded by one microphone per neuron, and independent component
analysis separates them up to a sign, a scale and an order.

The pipeline, each step an option:

1. ``filter`` (:mod:`.filters`): a fixed linear filter over the pixel axis, which commutes
   with the mixing; ``"none"`` is the paper's ICA on raw pixels, ``"gradient"`` (horizontal
   and vertical differences) estimates the unmixing on the images' innovations, which are far
   closer to independent than natural images are.
2. PCA whitening onto ``B`` components and scikit-learn's
   :class:`~sklearn.decomposition.FastICA` (Hyvärinen & Oja, 2000; negentropy contrast ``fun``)
   on the whitened rows: the maximally non-Gaussian, decorrelated unmixing.
3. ``refine_steps`` > 0 (:mod:`.prior`): the paper's objective (negentropy, total variation of
   the recovered images, mutual-independence penalty on the unmixing's rows) optimised by Adam
   from FastICA's unmixing.
4. The unmixing is applied to the *unfiltered* gradient and sign, scale and offset come
   exactly from the bias gradient (:mod:`.unmix`).

The attack is approximate (ICA error grows with the batch), it needs the first layer to have
at least ``B`` neurons, and it recovers no labels.

Example:
    >>> model = gl.models.create("mlp", depth=2, width=512)              # doctest: +SKIP
    >>> obs, truth = gl.simulate(model, x256, y256)                      # doctest: +SKIP
    >>> rec = gl.reconstruct(obs, attack="cpa")                          # doctest: +SKIP
    >>> paper = gl.reconstruct(obs, attack="cpa", filter="none")         # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gradleak.attacks.analytic._common import find_first_linear, observed_gradients, param_gradient
from gradleak.attacks.analytic.base import AnalyticAttack, AnalyticResult
from gradleak.attacks.analytic.cpa.filters import FILTERS, filter_rows
from gradleak.attacks.analytic.cpa.prior import PriorWeights, refine_unmixing
from gradleak.attacks.analytic.cpa.unmix import inputs_from_unmixing, whiten
from gradleak.attacks.base import Callback, register_attack
from gradleak.errors import ObservationError, ThreatModelError
from gradleak.types import Observation

#: FastICA's negentropy contrasts.
CONTRASTS = ("logcosh", "exp", "cube")


def fastica_unmixing(white: Tensor, *, fun: str, max_iter: int, tol: float,
                     seed: int) -> tuple[Tensor, int, bool]:
    """FastICA (scikit-learn) on already whitened rows (B, n).

    Returns:
        The (B, B) unmixing of the whitened rows, FastICA's iteration count, and whether it
        converged within ``max_iter``.
    """
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    ica = FastICA(n_components=white.shape[0], whiten=False, fun=fun, max_iter=max_iter,
                  tol=tol, random_state=seed)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            ica.fit(white.T.numpy())
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise ObservationError(
            f"FastICA failed on the whitened gradient ({exc}): its {white.shape[0]} sources are "
            "not separable this way (too few pixels per source, or duplicate inputs); try "
            "another filter, a smaller max_iter, or a smaller batch"
        ) from exc
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    unmixing = torch.from_numpy(np.ascontiguousarray(ica.components_, dtype=np.float64))
    if not torch.isfinite(unmixing).all():
        raise ObservationError(
            f"FastICA diverged on the whitened gradient ({white.shape[0]} sources, "
            f"{white.shape[1]} samples); try another filter or a smaller batch")
    return unmixing, int(ica.n_iter_), converged


@register_attack("cpa")
class CocktailParty(AnalyticAttack):
    """Approximate recovery of a large batch from a fully connected first layer, by ICA.

    Returns ``B`` images (one per private image, in an arbitrary order) and no labels;
    ``extras`` holds FastICA's iteration count, whether it converged, the filter, and the
    prior refinement's first and last loss.

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
            filter: innovation filter the unmixing is estimated on (:data:`FILTERS`:
                ``none`` = the paper's raw pixels, ``dx``, ``gradient``, ``laplacian``); the
                default ``gradient`` beats the paper's ``none`` by 2-20 dB on photos for
                B <= 256 (``benchmarks/spear_batch_sizes.py``; not at B=1024 there).
            refine_steps: Adam steps on the paper's prior-regularised objective after
                FastICA (0 = FastICA's unmixing as is; the paper runs 25,000 from random).
            refine_lr: Adam's learning rate (paper: 1e-3).
            negentropy_weight: weight of the negentropy term (paper: 1).
            tv_weight: weight of the recovered images' total variation (paper: 3.1).
            mi_weight: weight of the mutual-independence penalty (paper: 1.47).
            mi_temperature: temperature ``T`` of that penalty (paper: 12.4).
        """

        max_iter: int = 1000
        tol: float = 1e-5
        fun: str = "logcosh"
        filter: str = "gradient"
        refine_steps: int = 0
        refine_lr: float = 1e-3
        negentropy_weight: float = 1.0
        tv_weight: float = 3.1
        mi_weight: float = 1.47
        mi_temperature: float = 12.4

    requires = frozenset({"fc_first_layer_with_bias", "gradient_or_one_step_delta",
                          "batch_size"})
    positive = frozenset({"max_iter", "tol", "refine_lr", "mi_temperature"})
    nonnegative = frozenset({"refine_steps", "negentropy_weight", "tv_weight", "mi_weight"})

    def validate(self, cfg: Any) -> list[str]:
        """Also: ``fun`` is a FastICA contrast, ``filter`` a registered filter, ints are ints."""
        problems = super().validate(cfg)
        if cfg.fun not in CONTRASTS:
            problems.append(f"fun must be one of {', '.join(CONTRASTS)}, not {cfg.fun!r}")
        if cfg.filter not in FILTERS:
            problems.append(f"filter must be one of {', '.join(FILTERS.available())}, "
                            f"not {cfg.filter!r}")
        for name in ("max_iter", "refine_steps"):
            value = getattr(cfg, name)
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{name} must be an integer, not {value!r}")
        return problems

    def _image_shape(self, obs: Observation, n: int) -> tuple[int, ...] | None:
        """(C, H, W) of the layer's input when it is the image itself, else None."""
        shape = tuple(int(s) for s in obs.data_shape)
        if len(shape) == 3 and math.prod(shape) == n and min(shape[1:]) >= 3:
            return shape
        return None

    def solve(
        self, obs: Observation, generator: torch.Generator, callback: Callback | None
    ) -> AnalyticResult:
        """Unmixes the first layer's weight gradient into ``B`` inputs."""
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
        shape = self._image_shape(obs, gw.shape[1])
        needs_image = cfg.filter != "none" or (cfg.refine_steps > 0 and cfg.tv_weight > 0)
        if needs_image and shape is None:
            raise ThreatModelError(
                f"first-layer inputs that are (C, H, W) images of at least 3x3 pixels for "
                f"filter={cfg.filter!r} / the TV prior (data_shape {tuple(obs.data_shape)}, "
                f"layer input {gw.shape[1]}); use filter='none' and tv_weight=0"
            )
        rows = gw if cfg.filter == "none" else filter_rows(gw, shape or (), cfg.filter)
        white, k = whiten(rows, b)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        unmixing, n_iter, converged = fastica_unmixing(
            white, fun=cfg.fun, max_iter=cfg.max_iter, tol=cfg.tol, seed=seed)
        extras: dict[str, Any] = {"layer": first.name, "filter": cfg.filter,
                                  "ica_iterations": n_iter, "ica_converged": converged}
        if cfg.refine_steps > 0:
            raw = None
            if cfg.tv_weight > 0:
                raw = k @ (gw - gw.mean(dim=1, keepdim=True))
            weights = PriorWeights(cfg.negentropy_weight, cfg.tv_weight, cfg.mi_weight,
                                   cfg.mi_temperature)
            unmixing, losses = refine_unmixing(unmixing, white, raw, shape, weights,
                                               steps=cfg.refine_steps, lr=cfg.refine_lr)
            extras["refine_loss"] = (losses[0], losses[-1])
        flat = inputs_from_unmixing(unmixing @ k, gw, gb)
        return AnalyticResult(inputs=flat, labels=None, expected=b, extras=extras)
