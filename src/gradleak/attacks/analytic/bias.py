"""The analytic attack on a fully connected layer with a bias.

For a linear layer ``z = W x + b`` and one input, ``dL/dW = (dL/dz) x^T`` and
``dL/db = dL/dz``, so every row ``i`` with ``dL/db[i] != 0`` gives the input exactly:
``x = dL/dW[i, :] / dL/db[i]`` (Phong et al., "Privacy-Preserving Deep Learning via
Additively Homomorphic Encryption", 2017; Geiping et al., "Inverting Gradients", NeurIPS 2020,
Sec. 4). For a batch, row ``i`` gives ``sum_j dL/dz[i, j] x_j / sum_j dL/dz[i, j]``: a mix of
the inputs with row-specific weights. Rows whose mix contains a single sample (a ReLU that
fired for one input only; the reasoning of Fowl et al., "Robbing the Fed", ICLR 2022) all
return that sample exactly, so rows whose recoveries coincide identify separable samples.

Applied to a later linear layer, the same ratio returns that layer's input features
(:func:`recover_linear_input`); :func:`invert_features` optimises an image to match them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gradleak.attacks.analytic._common import (
    find_first_linear,
    model_dtype,
    observed_gradients,
    param_gradient,
)
from gradleak.attacks.analytic.base import AnalyticAttack, AnalyticResult
from gradleak.attacks.base import Callback, register_attack
from gradleak.errors import ConfigError, ThreatModelError
from gradleak.types import Observation


# --------------------------------------------------------------------------- core maths
def row_recoveries(
    weight_grad: Tensor, bias_grad: Tensor, *, bias_threshold: float = 1e-8
) -> tuple[Tensor, Tensor]:
    """Per-row input recoveries ``dL/dW[i, :] / dL/db[i]`` in float64.

    Args:
        weight_grad: (out, in) gradient of the layer's weight.
        bias_grad: (out,) gradient of its bias.
        bias_threshold: rows with ``|dL/db[i]| <= bias_threshold * max|dL/db|`` are skipped
            (their ratio is 0/0 or dominated by rounding).

    Returns:
        ``(recoveries (R, in), rows (R,))``: one recovered vector per usable row, and the
        indices of those rows.
    """
    gw = weight_grad.detach().to(torch.float64).reshape(weight_grad.shape[0], -1)
    gb = bias_grad.detach().to(torch.float64).reshape(-1)
    scale = gb.abs().max()
    if scale == 0:
        return gw.new_zeros((0, gw.shape[1])), torch.zeros(0, dtype=torch.long)
    rows = torch.nonzero(gb.abs() > bias_threshold * scale).flatten()
    return gw[rows] / gb[rows, None], rows


def least_squares_input(weight_grad: Tensor, bias_grad: Tensor, rows: Tensor) -> Tensor:
    """The least-squares solution of ``dL/dW[i, :] = dL/db[i] x`` over ``rows`` (float64).

    For one input every row holds exactly, and weighting rows by ``dL/db[i]^2`` (the
    least-squares solution ``sum_i db_i dW_i / sum_i db_i^2``) suppresses rounding error.
    """
    gw = weight_grad.detach().to(torch.float64).reshape(weight_grad.shape[0], -1)[rows]
    gb = bias_grad.detach().to(torch.float64).reshape(-1)[rows]
    return (gb @ gw) / (gb @ gb)


def cluster_rows(recoveries: Tensor, order: Tensor, tolerance: float) -> list[Tensor]:
    """Groups row recoveries that coincide up to ``tolerance`` (relative Euclidean distance).

    Leader clustering: rows are visited in ``order`` (most reliable first); each unassigned
    row collects every unassigned row within ``tolerance * max(|a|, |b|)`` of it.

    Returns:
        Clusters as index tensors into ``recoveries``, largest first.
    """
    n = recoveries.shape[0]
    if n == 0:
        return []
    dist = torch.cdist(recoveries, recoveries)
    norms = recoveries.norm(dim=1)
    bound = tolerance * torch.maximum(norms[:, None], norms[None, :]).clamp_min(1e-300)
    close = dist <= bound
    free = torch.ones(n, dtype=torch.bool)
    clusters: list[Tensor] = []
    for i in order.tolist():
        if not free[i]:
            continue
        members = torch.nonzero(close[i] & free).flatten()
        free[members] = False
        clusters.append(members)
    clusters.sort(key=lambda c: (-len(c), int(c.min())))
    return clusters


# --------------------------------------------------------------------------- feature access
def linear_layer(model: nn.Module, layer: str) -> nn.Linear:
    """The ``nn.Linear`` called ``layer`` in ``model`` (a qualified module name)."""
    modules = dict(model.named_modules())
    if layer not in modules:
        linears = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
        raise ConfigError(f"the model has no module {layer!r}; its linear layers: {linears}")
    mod = modules[layer]
    if not isinstance(mod, nn.Linear):
        raise ThreatModelError(f"a linear layer; module {layer!r} is {type(mod).__name__}")
    if mod.bias is None:
        raise ThreatModelError(f"a bias in the linear layer {layer!r}")
    return mod


@dataclass(frozen=True)
class FeatureRecovery:
    """The input features of one linear layer, recovered from its weight and bias gradients.

    Attributes:
        layer: the qualified name of the linear layer.
        features: (in_features,) float64 recovered input of the layer (batch of one).
        rows: indices of the rows (output units) with a non-zero bias gradient.
        max_row_deviation: largest relative distance of a single row's recovery from
            ``features``; about machine precision when the batch holds one input.
    """

    layer: str
    features: Tensor
    rows: Tensor
    max_row_deviation: float


def recover_linear_input(
    obs: Observation, layer: str, *, bias_threshold: float = 1e-8
) -> FeatureRecovery:
    """Recovers the input features of the linear layer ``layer`` (exact for a batch of one).

    At the first layer the features are the (normalised, flattened) image; at a later layer
    they are hidden activations, which :func:`invert_features` can turn into an image.

    Args:
        obs: the observation (a gradient, or a one-step FedAvg delta).
        layer: qualified module name of an ``nn.Linear`` with a bias, e.g. ``"layers.3"``.
        bias_threshold: relative threshold below which a row's bias gradient is ignored.

    Example:
        >>> model = gl.models.create("mlp", depth=3, width=64)          # doctest: +SKIP
        >>> obs, _ = gl.simulate(model, x[:1], y[:1])                  # doctest: +SKIP
        >>> rec = recover_linear_input(obs, "layers.3")                # doctest: +SKIP
        >>> rec.features.shape                                         # doctest: +SKIP
        torch.Size([64])
    """
    linear_layer(obs.model, layer)
    grads = observed_gradients(obs)
    gw = param_gradient(grads, layer, "weight")
    gb = param_gradient(grads, layer, "bias")
    rec, rows = row_recoveries(gw, gb, bias_threshold=bias_threshold)
    if len(rows) == 0:
        raise ThreatModelError(f"a non-zero bias gradient at layer {layer!r}")
    feats = least_squares_input(gw, gb, rows)
    dev = ((rec - feats).norm(dim=1) / feats.norm().clamp_min(1e-300)).max()
    return FeatureRecovery(layer, feats, rows, float(dev))


def invert_features(
    obs: Observation,
    layer: str,
    features: Tensor,
    *,
    iterations: int = 500,
    lr: float = 0.05,
    tv_weight: float = 0.0,
    seed: int = 0,
) -> Tensor:
    """Optimises one [0,1] image whose input to ``layer`` matches ``features``.

    A small feature-inversion helper (Adam on the squared feature error, optional total
    variation) to turn features from :func:`recover_linear_input` at a later layer into an
    image; optimisation attacks in :mod:`gradleak.attacks.optimization` go further.

    Returns:
        A (1, C, H, W) image in [0, 1].
    """
    model = obs.model_copy().eval()
    target_module = linear_layer(model, layer)
    dtype = model_dtype(model)
    target = features.detach().to(dtype).reshape(1, -1)
    captured: dict[str, Tensor] = {}

    def hook(_m: nn.Module, inputs: tuple[Tensor, ...], _o: Tensor) -> None:
        captured["x"] = inputs[0]

    handle = target_module.register_forward_hook(hook)
    gen = torch.Generator().manual_seed(seed)
    logit = (0.1 * torch.randn((1, *obs.data_shape), generator=gen, dtype=dtype)).requires_grad_()
    opt = torch.optim.Adam([logit], lr=lr)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(iterations):
            opt.zero_grad()
            img = torch.sigmoid(logit)
            model(obs.normalize(img))
            loss = (captured["x"].reshape(1, -1) - target).pow(2).sum() / target.pow(2).sum()
            if tv_weight:
                loss = loss + tv_weight * (
                    (img[..., 1:, :] - img[..., :-1, :]).abs().mean()
                    + (img[..., :, 1:] - img[..., :, :-1]).abs().mean()
                )
            loss.backward()
            opt.step()
    finally:
        handle.remove()
    return torch.sigmoid(logit).detach()


# --------------------------------------------------------------------------- the attack
@register_attack("bias")
class BiasAttack(AnalyticAttack):
    """Closed-form input recovery from a first linear layer with a bias.

    Batch of one: the input exactly (least squares over all rows with a non-zero bias
    gradient). Larger batches: rows driven by one sample recover it exactly; coinciding row
    recoveries are clustered and each cluster is a separated candidate, the rest are mixes
    (reported in ``extras``). Reads only the observation; labels are not recovered.

    References:
        Phong et al., "Privacy-Preserving Deep Learning via Additively Homomorphic
        Encryption", IEEE TIFS 2018 (arXiv 2017); Geiping et al., "Inverting Gradients - How
        easy is it to break privacy in federated learning?", NeurIPS 2020, Sec. 4; Fowl et
        al., "Robbing the Fed", ICLR 2022.

    Example:
        >>> model = gl.models.create("mlp", depth=4)                        # doctest: +SKIP
        >>> obs, truth = gl.simulate(model, x[:1], y[:1])                   # doctest: +SKIP
        >>> rec = gl.reconstruct(obs, attack="bias")                        # doctest: +SKIP
        >>> (rec.images - truth.images).abs().max() < 1e-5                  # doctest: +SKIP
        tensor(True)
    """

    @dataclass(frozen=True)
    class Config:
        """Settings of the bias attack.

        Attributes:
            bias_threshold: rows with ``|dL/db_i| <= bias_threshold * max|dL/db|`` are unused.
            cluster_tolerance: relative distance under which two row recoveries coincide.
            min_cluster_size: rows that must coincide for a candidate to count as one
                separated sample when the batch may hold more than one input.
            max_candidates: cap on returned candidates (None: the batch size if known).
        """

        bias_threshold: float = 1e-8
        cluster_tolerance: float = 1e-6
        min_cluster_size: int = 2
        max_candidates: int | None = None

    requires = frozenset({"fc_first_layer_with_bias", "gradient_or_one_step_delta"})
    nonnegative = frozenset({"bias_threshold", "cluster_tolerance"})
    positive = frozenset({"min_cluster_size", "max_candidates"})

    def solve(
        self, obs: Observation, generator: torch.Generator, callback: Callback | None
    ) -> AnalyticResult:
        """Recovers the input(s) from the first layer's weight and bias gradients.

        A batch whose samples are not all separated gives a partial result: the separated
        samples, with ``expected`` the batch size and the reason in ``extras["partial"]``.
        """
        cfg = self.config
        first = find_first_linear(obs)
        grads = observed_gradients(obs)
        gw = param_gradient(grads, first.name, "weight")
        gb = param_gradient(grads, first.name, "bias")
        rec, rows = row_recoveries(gw, gb, bias_threshold=cfg.bias_threshold)
        if len(rows) == 0:
            raise ThreatModelError(
                "a non-zero bias gradient in the first layer (this update has none)"
            )
        extras: dict[str, Any] = {
            "layer": first.name,
            "rows_total": int(gw.shape[0]),
            "rows_used": len(rows),
            "batch_size": obs.batch_size,
        }
        if obs.batch_size == 1:
            flat = least_squares_input(gw, gb, rows)[None]
            dev = (rec - flat).norm(dim=1) / flat.norm().clamp_min(1e-300)
            extras.update(
                separated=1,
                single_sample_rows=len(rows),
                mixed_rows=0,
                max_row_deviation=float(dev.max()),
                clusters=[{"size": len(rows), "rows": rows.tolist()}],
            )
        else:
            flat, info = self._separate(gw, gb, rec, rows, obs.batch_size)
            extras.update(info)
        extras["unclamped_range"] = [float(flat.min()), float(flat.max())]
        if obs.batch_size is not None and flat.shape[0] < obs.batch_size:
            extras["partial"] = (
                f"only {flat.shape[0]} of {obs.batch_size} samples are separated (rows driven "
                "by one sample alone); the others appear only in mixed rows. Use 'spear' for "
                "a ReLU first layer, or an optimisation attack"
            )
        return AnalyticResult(inputs=flat, labels=None, expected=obs.batch_size, extras=extras)

    def _separate(
        self, gw: Tensor, gb: Tensor, rec: Tensor, rows: Tensor, batch_size: int | None
    ) -> tuple[Tensor, dict[str, Any]]:
        cfg = self.config
        weight = gb.detach().to(torch.float64)[rows].abs()
        order = torch.argsort(weight, descending=True, stable=True)
        clusters = cluster_rows(rec, order, cfg.cluster_tolerance)
        if len(clusters) == 1:  # every row agrees: the batch held one input (or copies of it)
            accepted = clusters
        else:
            accepted = [c for c in clusters if len(c) >= cfg.min_cluster_size]
        cap = cfg.max_candidates if cfg.max_candidates is not None else batch_size
        if cap is not None:
            accepted = accepted[:cap]
        in_accepted = sum(len(c) for c in accepted)
        info: dict[str, Any] = {
            "clusters": [{"size": len(c), "rows": rows[c].tolist()} for c in accepted],
            "separated": len(accepted),
            "single_sample_rows": in_accepted,
            "mixed_rows": len(rows) - in_accepted,
            "distinct_row_recoveries": len(clusters),
        }
        if not accepted:
            # No row is driven by a single sample: all that is left is a mix of the inputs.
            info["fallback"] = "mixture (least squares over all rows; no sample separated)"
            return least_squares_input(gw, gb, rows)[None], info
        flats = torch.stack([least_squares_input(gw, gb, rows[c]) for c in accepted])
        return flats, info
