"""SPEAR's last steps: pick ``B`` independent directions, solve for the inputs, self-check.

Dimitrov et al., NeurIPS 2024: with the directions ``A`` known, ``λ`` follows from the bias
gradient (``dL/db = M A λ``) and the inputs from ``X^T = Λ^{-1} A^{-1} V^T``. Every recovered
sample is then checked against the observation alone (no ground truth): its activation
pattern must match the sparsity of its gradient column, and its own per-sample gradient (with
the best-fitting label) must reproduce that column.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradleak.attacks.analytic._common import flat_to_images
from gradleak.attacks.analytic.spear.factorisation import F64, LowRank
from gradleak.attacks.analytic.spear.search import Direction, DirectionSearch
from gradleak.losses import get_loss
from gradleak.types import Observation


def select_directions(search: DirectionSearch, b: int) -> list[Direction]:
    """Greedy selection: sparsest first, skipping directions that lose rank."""
    ordered = sorted(search.found, key=lambda d: -int(d.zeros.sum()))
    chosen: list[Direction] = []
    for d in ordered:
        trial = torch.stack([c.q for c in chosen] + [d.q], dim=1)
        sv = torch.linalg.svdvals(trial)
        if sv[-1] > 1e-8 * sv[0]:
            chosen.append(d)
        if len(chosen) == b:
            break
    return chosen


def solve_inputs(lr: LowRank, gb: Tensor, found: list[Direction]) -> tuple[Tensor, Tensor]:
    """``λ`` from ``dL/db = M A λ``, then ``X^T = Λ^{-1} A^{-1} V^T``: (inputs (b, in), λ)."""
    a = torch.stack([d.q for d in found], dim=1)  # (b, b)
    ma = lr.m @ a
    lam = torch.linalg.lstsq(ma, gb.reshape(-1, 1)).solution.reshape(-1)
    xt = torch.linalg.solve(a, lr.v.T) / lam[:, None]
    return xt, lam


def per_sample_columns(
    obs: Observation, layer_name: str, inputs: Tensor, batch_size: int
) -> Tensor:
    """``dL/dz`` of the first layer for every (sample, label): (N, K, out), float64.

    Each row is the gradient the sample alone would contribute to the batch's mean loss
    (divided by the batch size) if its label were that class.
    """
    model = obs.model_copy().to(F64).eval()
    layer = dict(model.named_modules())[layer_name]
    k = obs.num_classes
    n = inputs.shape[0]
    rep = inputs.to(F64).repeat_interleave(k, dim=0)
    targets = torch.arange(k).repeat(n)
    captured: dict[str, Tensor] = {}

    def hook(_m: nn.Module, _i: tuple[Tensor, ...], out: Tensor) -> None:
        captured["z"] = out

    handle = layer.register_forward_hook(hook)
    try:
        logits = model(rep.reshape(n * k, *obs.data_shape))
        loss = get_loss(obs.loss)(logits, targets) * (n * k)
        (gz,) = torch.autograd.grad(loss, captured["z"])
    finally:
        handle.remove()
    return (gz / batch_size).reshape(n, k, -1).detach()



def verify(
    obs: Observation,
    layer: str,
    flat: Tensor,
    found: list[Direction],
    lam: Tensor,
    lr: LowRank,
    search: DirectionSearch,
    verify_tol: float,
) -> dict[str, Any]:
    """Per-sample self-checks from the observation alone."""
    a = torch.stack([d.q for d in found], dim=1)
    cols = (lr.m @ a) * lam  # (out, b) recovered dL/dZ
    module = dict(obs.model.named_modules())[layer]
    w = module.weight.detach().to(F64)
    bias = module.bias.detach().to(F64)
    pre = flat @ w.T + bias  # (b, out)
    # the model's own input space (already normalised): no normalisation again
    predicted = per_sample_columns(obs, layer, flat.reshape(-1, *obs.data_shape), lr.rank)
    images = flat_to_images(flat, obs)
    per_sample = []
    for j in range(lr.rank):
        col = cols[:, j]
        inactive = pre[j] <= 0
        zero = found[j].zeros
        use = search.informative
        agree = float((inactive[use] == zero[use]).to(F64).mean())
        errs = (predicted[j] - col).norm(dim=1) / col.norm().clamp_min(1e-300)
        label = int(torch.argmin(errs))
        err = float(errs[label])
        lo, hi = float(images[j].min()), float(images[j].max())
        in_range = lo >= -1e-3 and hi <= 1 + 1e-3
        per_sample.append(
            {
                "index": j,
                "label": label,
                "column_error": err,
                "pattern_agreement": agree,
                "in_range": in_range,
                "zeros": int(found[j].zeros.sum()),
                "source": found[j].source,
                "recovered": bool(err <= verify_tol and agree == 1.0 and in_range),
            }
        )
    return {
        "per_sample": per_sample,
        "recovered": sum(s["recovered"] for s in per_sample),
        "recovered_indices": [s["index"] for s in per_sample if s["recovered"]],
    }
