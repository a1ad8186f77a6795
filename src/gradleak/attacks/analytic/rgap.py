"""R-GAP: recursive closed-form gradient inversion with a per-layer rank analysis.

Zhu & Blaschko, "R-GAP: Recursive Gradient Attack on Privacy", ICLR 2021 (official code:
JunyiZhu-AI/R-GAP). For a chain of linear / convolutional layers ``z_l = W_l x_l (+ b_l)``,
``x_{l+1} = act_l(z_l)``, and one input, the gradient of layer ``l`` is linear in its input:
``dL/dW_l = k_l x_l^T`` (unrolled for a convolution) with ``k_l = dL/dz_l``. Going from the
output to the input:

1. the last layer: ``k`` is the bias gradient, or, for R-GAP's single-logit logistic model
   without bias, ``k`` follows from the scalar equation ``w . dL/dw = k z`` with
   ``k = sigmoid(z) - y`` (both labels, and both roots where there are two, are tried and
   the most self-consistent reconstruction is kept);
2. each earlier layer: ``z_l = act_l^{-1}(x_{l+1})`` (the input just recovered) and
   ``k_l = (W_{l+1}^T k_{l+1}) * act_l'(z_l)``; the input ``x_l`` solves the least-squares
   system stacking the weight-gradient constraints, the forward constraints
   ``W_l x_l = z_l - b_l`` through the unrolled convolution, and the padding constraint
   (zero-padded entries are eliminated).

Every layer's system is reported in ``Reconstruction.extras["rank_analysis"]``: number of
unknowns and constraints, numerical rank, and whether the layer is invertible.
All linear algebra runs in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.optimize as sopt
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradleak.attacks.analytic._common import (
    ELEMENTWISE_ACTIVATIONS,
    flat_to_images,
    model_dtype,
    observed_gradients,
    probe_input,
    to_unit_range,
    trace_calls,
)
from gradleak.attacks.base import REQUIREMENTS, Attack, Callback, Progress, register_attack
from gradleak.errors import ConfigError, ThreatModelError
from gradleak.types import Observation, Reconstruction, Stopwatch, Trace

F64 = torch.float64


# --------------------------------------------------------------------------- activations
@dataclass(frozen=True)
class Inversion:
    """How to undo an elementwise activation ``x = act(z)``.

    Attributes:
        inverse: ``x -> (z, known)``; ``known`` marks entries whose pre-activation is
            determined (a ReLU output of 0 hides its pre-activation).
        derivative: ``(z, x) -> act'(z)``.
    """

    inverse: Callable[[Tensor], tuple[Tensor, Tensor]]
    derivative: Callable[[Tensor, Tensor], Tensor]


def _all_known(z: Tensor) -> tuple[Tensor, Tensor]:
    return z, torch.ones_like(z, dtype=torch.bool)


def _leaky(mod: nn.Module) -> Inversion:
    slope = float(mod.negative_slope)  # type: ignore[attr-defined, arg-type]
    if slope <= 0:
        return _relu(mod)
    return Inversion(
        inverse=lambda x: _all_known(torch.where(x < 0, x / slope, x)),
        derivative=lambda z, x: torch.where(z < 0, torch.full_like(z, slope), torch.ones_like(z)),
    )


def _relu(_mod: nn.Module) -> Inversion:
    return Inversion(
        inverse=lambda x: (x, x > 0),
        derivative=lambda z, x: (x > 0).to(x.dtype),
    )


def _sigmoid(_mod: nn.Module) -> Inversion:
    def inv(x: Tensor) -> tuple[Tensor, Tensor]:
        xc = x.clamp(1e-12, 1 - 1e-12)
        return _all_known(torch.log(xc) - torch.log1p(-xc))

    return Inversion(inverse=inv, derivative=lambda z, x: torch.sigmoid(z) * (1 - torch.sigmoid(z)))


def _tanh(_mod: nn.Module) -> Inversion:
    return Inversion(
        inverse=lambda x: _all_known(torch.atanh(x.clamp(-1 + 1e-12, 1 - 1e-12))),
        derivative=lambda z, x: 1 - torch.tanh(z) ** 2,
    )


def _identity(_mod: nn.Module) -> Inversion:
    return Inversion(inverse=_all_known, derivative=lambda z, x: torch.ones_like(z))


# Activation type -> how to invert it (extend by adding an entry).
INVERSIONS: dict[type[nn.Module], Callable[[nn.Module], Inversion]] = {
    nn.LeakyReLU: _leaky,
    nn.ReLU: _relu,
    nn.Sigmoid: _sigmoid,
    nn.Tanh: _tanh,
    nn.Identity: _identity,
}


# --------------------------------------------------------------------------- model as a chain
@dataclass
class Stage:
    """One layer of the chain: ``x_out = act(layer(x_in))``.

    Attributes:
        name: qualified name of the layer (its parameters are ``name.weight`` / ``name.bias``).
        layer: the ``nn.Linear`` or ``nn.Conv2d``.
        act: the elementwise activation after it (``nn.Identity`` if none).
        in_shape: shape of one input of the layer (no batch axis).
        out_shape: shape of one output of the layer.
    """

    name: str
    layer: nn.Module
    act: nn.Module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


_SKIPPABLE = (nn.Flatten, nn.Dropout, nn.Unflatten)


def chain_problem(obs: Observation) -> str | None:
    """None if the model is a chain R-GAP can invert, else what is missing."""
    try:
        parse_chain(obs)
    except ThreatModelError as exc:
        return str(exc)
    return None


def parse_chain(obs: Observation) -> list[Stage]:
    """Reads the model as a chain of Linear/Conv2d layers and elementwise activations.

    The model is executed once on a probe input; every leaf module call must consume the
    previous call's output (reshapes allowed), so custom modules work if they compute a chain.

    Raises:
        ThreatModelError: another layer type (pooling, batch norm, residual connections),
            a non-invertible activation, or a last layer R-GAP cannot start from.
    """
    model = obs.model
    x = probe_input(obs, model_dtype(model))
    calls, out = trace_calls(model, x)
    prev = x
    stages: list[Stage] = []
    for call in calls:
        mod = call.module
        if call.input.numel() != prev.numel() or not torch.equal(
            call.input.reshape(-1), prev.reshape(-1)
        ):
            raise ThreatModelError(
                f"a plain chain of layers; module {call.name!r} does not consume the previous "
                "layer's output (residual connections and branches are not supported)"
            )
        prev = call.output
        if isinstance(mod, _SKIPPABLE):
            continue
        if isinstance(mod, nn.Conv2d):
            if mod.groups != 1 or tuple(mod.dilation) != (1, 1) or mod.padding_mode != "zeros":
                raise ThreatModelError(
                    f"plain convolutions (groups=1, dilation=1, zero padding); {call.name!r} "
                    "is not one"
                )
            if isinstance(mod.padding, str):
                raise ThreatModelError(f"numeric padding in {call.name!r}")
        if isinstance(mod, nn.Linear | nn.Conv2d):
            if not mod.weight.requires_grad:
                raise ThreatModelError(f"a trainable weight in {call.name!r}")
            stages.append(
                Stage(call.name, mod, nn.Identity(), tuple(call.input.shape[1:]),
                      tuple(call.output.shape[1:]))
            )
            continue
        if isinstance(mod, ELEMENTWISE_ACTIVATIONS):
            if not stages or not isinstance(stages[-1].act, nn.Identity):
                raise ThreatModelError(
                    f"one activation after each layer; {call.name!r} is not preceded by a layer"
                )
            if type(mod) not in INVERSIONS:
                raise ThreatModelError(f"an invertible activation; {call.name!r} is not")
            stages[-1].act = mod
            continue
        if any(True for _ in mod.parameters(recurse=False)) or not isinstance(mod, nn.Module):
            raise ThreatModelError(
                f"only Linear/Conv2d layers; {call.name!r} is {type(mod).__name__}"
            )
        raise ThreatModelError(
            f"only Linear/Conv2d layers and elementwise activations (ReLU, LeakyReLU, Sigmoid, "
            f"Tanh); {call.name!r} is {type(mod).__name__}"
        )
    if not stages:
        raise ThreatModelError("a model with linear or convolutional layers")
    if not torch.equal(prev.reshape(-1), out.reshape(-1)):
        raise ThreatModelError("a model whose output is its last layer's output")
    last = stages[-1]
    if not isinstance(last.layer, nn.Linear) or not isinstance(last.act, nn.Identity):
        raise ThreatModelError("a final nn.Linear layer producing the logits (no activation)")
    has_bias = last.layer.bias is not None and last.layer.bias.requires_grad
    if not has_bias and not (obs.loss == "logistic" and last.layer.out_features == 1):
        raise ThreatModelError(
            "a bias in the last layer, or a single-output model trained with the logistic loss "
            "(R-GAP's CNN6), to start the recursion"
        )
    return stages


def _single_input_problem(obs: Observation) -> str | None:
    if obs.batch_size is None or obs.batch_size == 1:
        return None
    return (
        f"a batch of one input (this update averages {obs.batch_size}); R-GAP's linear systems "
        "only determine the batch's combination. Use 'spear' (ReLU MLPs) or 'ig'"
    )


REQUIREMENTS.register("rgap_chain")(chain_problem)
REQUIREMENTS.register("single_input")(_single_input_problem)


# --------------------------------------------------------------------------- last layer
def _logistic_residual(s: float) -> float:
    """``h(s) = -s / (1 + e^s)``: ``w . dL/dw`` as a function of the signed margin ``s``."""
    return -s / (1.0 + math.exp(s)) if s < 700 else 0.0


_S_STAR = 1.2784645427610738  # argmin of h (solves 1 + e^s (1 - s) = 0)


def logistic_margins(c: float) -> list[float]:
    """All margins ``s = y' z`` (``y' = 2y - 1``) with ``h(s) = c`` for the logistic loss.

    ``c = w . dL/dw`` is observed. ``c > 0`` (a misclassified input) has one root ``s < 0``;
    ``h_min < c < 0`` has two roots ``0 < s1 < 1.278 < s2``.
    """
    h_min = _logistic_residual(_S_STAR)
    if c > 0:
        lo = -(abs(c) + 50.0)
        return [sopt.brentq(lambda s: _logistic_residual(s) - c, lo, 0.0, xtol=1e-300, rtol=1e-15)]
    if c == 0 or c <= h_min:
        return [_S_STAR] if c == h_min else []
    f = lambda s: _logistic_residual(s) - c  # noqa: E731
    roots = [sopt.brentq(f, 0.0, _S_STAR, xtol=1e-300, rtol=1e-15)]
    hi = _S_STAR
    while f(hi) < 0 and hi < 690:
        hi *= 2
    if f(hi) > 0:
        roots.append(sopt.brentq(f, _S_STAR, hi, xtol=1e-300, rtol=1e-15))
    return roots


@dataclass(frozen=True)
class Start:
    """One hypothesis for the last layer: its error signal ``k`` and the label it implies."""

    k: Tensor
    label: int | None
    note: str
    logit: float | None = None


def last_layer_starts(obs: Observation, stage: Stage, grads: dict[str, Tensor]) -> list[Start]:
    """The candidate error signals ``k = dL/dz`` of the last (linear) layer."""
    layer = stage.layer
    assert isinstance(layer, nn.Linear)
    bias_key = f"{stage.name}.bias"
    if layer.bias is not None and bias_key in grads:
        k = grads[bias_key].to(F64).reshape(-1)
        if obs.loss == "logistic" and k.numel() == 1:
            label = int(k.item() < 0)
        else:
            label = int(torch.argmin(k).item())
        return [Start(k, label, "bias gradient")]
    g = grads[f"{stage.name}.weight"].to(F64).reshape(-1)
    w = layer.weight.detach().to(F64).reshape(-1)
    c = float(w @ g)
    labels = [int(obs.labels[0])] if obs.labels is not None else [1, 0]
    starts = []
    for y in labels:
        sign = 2 * y - 1
        for s in logistic_margins(c):
            z = sign * s
            err = 1.0 / (1.0 + math.exp(-z)) - y
            starts.append(
                Start(torch.tensor([err], dtype=F64), y, f"label {y}, logit {z:.6g}", z)
            )
    if not starts:
        raise ThreatModelError(
            "an informative last-layer gradient (w . dL/dw has no logistic-loss solution)"
        )
    return starts


# --------------------------------------------------------------------------- linear systems
def conv_patch_indices(
    in_shape: tuple[int, int, int], kernel: tuple[int, int], stride: tuple[int, int],
    padding: tuple[int, int],
) -> tuple[Tensor, int]:
    """im2col index map of an (unpadded) input: (C*kh*kw, P) flat input indices, -1 for padding.

    Returns:
        ``(indices, number of padded entries)``.
    """
    c, h, w = in_shape
    idx = torch.arange(c * h * w, dtype=F64).reshape(1, c, h, w) + 1
    padded = F.pad(idx, (padding[1], padding[1], padding[0], padding[0]))
    cols = F.unfold(padded, kernel_size=kernel, stride=stride)[0].long() - 1
    n_pad = padded.numel() - idx.numel()
    return cols, n_pad


def _coo(rows: Tensor, cols: Tensor, vals: Tensor, shape: tuple[int, int]) -> sp.csr_matrix:
    keep = cols >= 0
    return sp.csr_matrix(
        (vals[keep].numpy(), (rows[keep].numpy(), cols[keep].numpy())), shape=shape
    )


@dataclass
class LayerSystem:
    """A layer's least-squares system ``A x = b`` in blocks, plus bookkeeping for the report.

    ``rank_one = (k, G)`` holds a linear layer's gradient constraints ``G = k x^T`` implicitly.
    """

    blocks: list[tuple[sp.csr_matrix, np.ndarray]]
    unknowns: int
    gradient_constraints: int
    forward_constraints: int
    padding: int
    rank_one: tuple[np.ndarray, np.ndarray] | None = None


def conv_system(
    stage: Stage, k: Tensor, g_weight: Tensor, z: Tensor | None, known: Tensor | None
) -> LayerSystem:
    """Gradient + forward constraints of a convolution on its unpadded input (float64)."""
    layer = stage.layer
    assert isinstance(layer, nn.Conv2d)
    weight = layer.weight.detach().to(F64)
    f_out = weight.shape[0]
    kernel = (int(weight.shape[2]), int(weight.shape[3]))
    cols, n_pad = conv_patch_indices(
        stage.in_shape, kernel, tuple(layer.stride), tuple(layer.padding)  # type: ignore[arg-type]
    )
    ckk, n_pos = cols.shape
    n = math.prod(stage.in_shape)
    kf = k.reshape(f_out, n_pos)
    # gradient: dL/dW[f, ckk] = sum_p k[f, p] x[cols[ckk, p]]
    g_rows = (torch.arange(f_out)[:, None, None] * ckk + torch.arange(ckk)[None, :, None])
    g_rows = g_rows.expand(f_out, ckk, n_pos)
    g_cols = cols[None].expand(f_out, ckk, n_pos)
    g_vals = kf[:, None, :].expand(f_out, ckk, n_pos)
    a_grad = _coo(g_rows.reshape(-1), g_cols.reshape(-1), g_vals.reshape(-1), (f_out * ckk, n))
    blocks = [(a_grad, g_weight.to(F64).reshape(-1).numpy())]
    n_fwd = 0
    if z is not None and known is not None:
        # forward: z[f, p] - b[f] = sum_ckk W[f, ckk] x[cols[ckk, p]], on rows with known z
        w2 = weight.reshape(f_out, ckk)
        f_rows = torch.arange(f_out * n_pos).reshape(f_out, 1, n_pos).expand(f_out, ckk, n_pos)
        f_cols = cols[None].expand(f_out, ckk, n_pos)
        f_vals = w2[:, :, None].expand(f_out, ckk, n_pos)
        a_fwd = _coo(f_rows.reshape(-1), f_cols.reshape(-1), f_vals.reshape(-1),
                     (f_out * n_pos, n))
        rhs = z.reshape(f_out, n_pos).clone()
        if layer.bias is not None:
            rhs = rhs - layer.bias.detach().to(F64)[:, None]
        mask = known.reshape(-1).numpy()
        a_fwd = a_fwd[mask]
        n_fwd = int(mask.sum())
        blocks.append((a_fwd, rhs.reshape(-1).numpy()[mask]))
    return LayerSystem(blocks, n, f_out * ckk, n_fwd, n_pad)


def linear_system(
    stage: Stage, k: Tensor, g_weight: Tensor, z: Tensor | None, known: Tensor | None
) -> LayerSystem:
    """Gradient constraints ``dL/dW = k x^T`` (+ forward ``W x = z - b``) of a linear layer.

    The gradient block ``k (x) I`` is kept implicit (``rank_one``); :func:`solve_linear`
    solves it in closed form.
    """
    layer = stage.layer
    assert isinstance(layer, nn.Linear)
    n, out = layer.in_features, layer.out_features
    blocks: list[tuple[sp.csr_matrix, np.ndarray]] = []
    n_fwd = 0
    if z is not None and known is not None:
        mask = known.reshape(-1).numpy()
        rhs = z.reshape(-1).clone()
        if layer.bias is not None:
            rhs = rhs - layer.bias.detach().to(F64)
        w = layer.weight.detach().to(F64).numpy()[mask]
        blocks.append((sp.csr_matrix(w), rhs.numpy()[mask]))
        n_fwd = int(mask.sum())
    rank_one = (k.reshape(-1).numpy(), g_weight.to(F64).reshape(out, n).numpy())
    return LayerSystem(blocks, n, out * n, n_fwd, 0, rank_one)


# Layer type -> builder of its least-squares system.
SYSTEMS: dict[type[nn.Module], Callable[..., LayerSystem]] = {
    nn.Conv2d: conv_system,
    nn.Linear: linear_system,
}


@dataclass
class Solution:
    """The solved input of a layer and its rank report."""

    x: np.ndarray
    rank: int
    condition: float
    residual: float


def _scaled(system: LayerSystem) -> tuple[sp.csr_matrix, np.ndarray]:
    """Stacks the blocks, each scaled to unit mean row norm (so neither kind dominates)."""
    mats, rhss = [], []
    for a, b in system.blocks:
        if a.shape[0] == 0:
            continue
        scale = math.sqrt(a.shape[0]) / max(sp.linalg.norm(a), 1e-300)
        mats.append(a * scale)
        rhss.append(b * scale)
    return sp.vstack(mats, format="csr"), np.concatenate(rhss)


def solve_gram(system: LayerSystem, rank_tol: float) -> Solution:
    """Least squares via the Gram matrix (Cholesky + one refinement; pseudo-inverse if singular).

    The rank is ``n`` when the Cholesky factorisation succeeds with a reciprocal condition
    number above ``rank_tol**2``; otherwise it is counted from the Gram eigenvalues.
    """
    a, b = _scaled(system)
    gram = (a.T @ a).toarray()
    atb = a.T @ b
    n = gram.shape[0]
    x: np.ndarray | None = None
    rank, cond = n, math.inf
    # torch's Cholesky / eigh (its bundled BLAS is much faster here than scipy's OpenBLAS)
    gram_t = torch.from_numpy(gram)
    chol, info = torch.linalg.cholesky_ex(gram_t)
    if int(info) == 0:
        anorm = np.abs(gram).sum(axis=0).max()
        rcond, _info = sla.lapack.dpocon(chol.numpy(), anorm, uplo="L")
        if rcond > rank_tol**2:
            rhs = torch.from_numpy(atb)[:, None]
            xt = torch.cholesky_solve(rhs, chol)
            resid = torch.from_numpy(a.T @ (b - a @ xt[:, 0].numpy()))[:, None]
            xt = xt + torch.cholesky_solve(resid, chol)
            x = xt[:, 0].numpy()
            cond = 1.0 / math.sqrt(rcond)
    if x is None:
        evals_t, evecs_t = torch.linalg.eigh(gram_t)
        evals, evecs = evals_t.numpy(), evecs_t.numpy()
        sv = np.sqrt(np.clip(evals, 0.0, None))
        keep = sv > rank_tol * sv.max()
        rank = int(keep.sum())
        inv = np.zeros_like(evals)
        inv[keep] = 1.0 / evals[keep]
        x = evecs @ (inv * (evecs.T @ atb))
        cond = float(sv.max() / sv[keep].min()) if rank else math.inf
    res = float(np.linalg.norm(a @ x - b) / max(float(np.linalg.norm(b)), 1e-300))
    return Solution(x, rank, cond, res)


def solve_svd(system: LayerSystem, rank_tol: float) -> Solution:
    """Least squares on the dense matrix with an SVD (exact rank; slow for large layers)."""
    a, b = _scaled(system)
    dense = a.toarray()
    x, _res, rank, sv = sla.lstsq(dense, b, cond=rank_tol, lapack_driver="gelsd",
                                  check_finite=False)
    keep = sv > rank_tol * sv.max()
    cond = float(sv.max() / sv[keep].min()) if keep.any() else math.inf
    res = float(np.linalg.norm(dense @ x - b) / max(float(np.linalg.norm(b)), 1e-300))
    return Solution(x, int(rank), cond, res)


def solve_linear(system: LayerSystem, solver: Callable[[LayerSystem, float], Solution],
                 rank_tol: float) -> Solution:
    """A linear layer: ``x = G^T k / |k|^2`` from ``G = k x^T`` (exact, rank ``n`` if k != 0).

    The relative residual covers both the gradient and the forward constraints, so that a
    wrong last-layer hypothesis shows up. With ``k = 0`` only the forward constraints remain.
    """
    assert system.rank_one is not None
    k, g = system.rank_one
    k2 = float(k @ k)
    if k2 == 0.0:
        if not system.blocks:
            return Solution(np.zeros(system.unknowns), 0, math.inf, math.inf)
        return solver(system, rank_tol)
    x = k @ g / k2
    num = np.linalg.norm(g - np.outer(k, x)) ** 2
    den = np.linalg.norm(g) ** 2
    for a, b in system.blocks:
        num += np.linalg.norm(a @ x - b) ** 2 / max(float(np.linalg.norm(b)) ** 2, 1e-300) * den
        den += den
    return Solution(x, system.unknowns, 1.0, float(math.sqrt(num / max(float(den), 1e-300))))


SOLVERS: dict[str, Callable[[LayerSystem, float], Solution]] = {
    "gram": solve_gram,
    "svd": solve_svd,
}


# --------------------------------------------------------------------------- recursion
def _adjoint(stage: Stage, k: Tensor) -> Tensor:
    """``W^T k``: the error signal at the layer's input (float64, unbatched)."""
    layer = stage.layer
    w = layer.weight.detach().to(F64)  # type: ignore[operator]
    if isinstance(layer, nn.Linear):
        return w.T @ k.reshape(-1)
    assert isinstance(layer, nn.Conv2d)
    u = torch.zeros((1, *stage.in_shape), dtype=F64, requires_grad=True)
    out = F.conv2d(u, w, None, layer.stride, layer.padding)
    (gu,) = torch.autograd.grad(out, u, grad_outputs=k.reshape(out.shape))
    return gu[0]


class Recursion:
    """The layer-by-layer inversion from one last-layer hypothesis, advanced one layer a step.

    Attributes:
        start: the hypothesis.
        x: the input of the layer solved last (finally: the model input, flattened).
        report: one rank-analysis row per solved layer (last layer first until finished).
        residual: sum of the layers' relative residuals so far.
    """

    def __init__(self, stages: list[Stage], grads: dict[str, Tensor], start: Start,
                 solver: Callable[[LayerSystem, float], Solution], rank_tol: float) -> None:
        self.stages, self.grads, self.start = stages, grads, start
        self.solver, self.rank_tol = solver, rank_tol
        self.k = start.k
        self.x = torch.zeros(0, dtype=F64)
        self.report: list[dict[str, Any]] = []
        self.residual = 0.0
        self.next_index = len(stages) - 1

    @property
    def done(self) -> bool:
        """Whether the input layer has been solved."""
        return self.next_index < 0

    def step(self) -> None:
        """Solves the next layer (towards the input)."""
        idx = self.next_index
        stage = self.stages[idx]
        z: Tensor | None = None
        known: Tensor | None = None
        if idx < len(self.stages) - 1:
            inv = INVERSIONS[type(stage.act)](stage.act)
            x_next = self.x.reshape(stage.out_shape)
            z, known = inv.inverse(x_next)
            back = _adjoint(self.stages[idx + 1], self.k).reshape(stage.out_shape)
            self.k = back * inv.derivative(z, x_next)
        g_weight = self.grads[f"{stage.name}.weight"].to(F64)
        system = SYSTEMS[type(stage.layer)](stage, self.k, g_weight, z, known)
        if system.rank_one is not None:
            sol = solve_linear(system, self.solver, self.rank_tol)
        else:
            sol = self.solver(system, self.rank_tol)
        self.x = torch.from_numpy(sol.x).to(F64)
        self.residual += sol.residual
        self.report.append(
            {
                "layer": stage.name,
                "type": type(stage.layer).__name__,
                "input_shape": list(stage.in_shape),
                "unknowns": system.unknowns,
                "padding_entries": system.padding,
                "gradient_constraints": system.gradient_constraints,
                "forward_constraints": system.forward_constraints,
                "constraints": system.gradient_constraints + system.forward_constraints,
                "rank": sol.rank,
                "deficiency": system.unknowns - sol.rank,
                "invertible": sol.rank == system.unknowns,
                "condition": sol.condition,
                "relative_residual": sol.residual,
            }
        )
        self.next_index -= 1


def positively_homogeneous(stages: list[Stage]) -> bool:
    """Whether ``f(a x) = a f(x)`` for ``a > 0``: no biases, (Leaky)ReLU/identity activations.

    Then a last-layer hypothesis and its rescaled twin (the other root of R-GAP's logistic
    equation, same label) give the same input up to the factor ``z_twin / z``.
    """
    for st in stages:
        if getattr(st.layer, "bias", None) is not None:
            return False
        if not isinstance(st.act, nn.LeakyReLU | nn.ReLU | nn.Identity):
            return False
    return True


def range_violation(images: Tensor) -> float:
    """Relative distance of images from the valid range [0, 1] (0 when inside)."""
    return float((images - images.clamp(0, 1)).norm() / images.norm().clamp_min(1e-300))


# --------------------------------------------------------------------------- the attack
@register_attack("rgap")
class RGAP(Attack):
    """R-GAP: recursive closed-form inversion of a chain of Linear / Conv2d layers (batch 1).

    Reports, per layer, the unknowns, gradient / forward constraints, numerical rank and
    invertibility in ``extras["rank_analysis"]`` (input layer first), the residual of each
    layer's system, and the label / logit hypothesis that was kept.

    Reference:
        Zhu & Blaschko, "R-GAP: Recursive Gradient Attack on Privacy", ICLR 2021.

    Example:
        >>> model = gl.models.create("cnn6")                            # doctest: +SKIP
        >>> obs, truth = gl.simulate(model, x[:1], torch.tensor([1]))   # doctest: +SKIP
        >>> rec = gl.reconstruct(obs, attack="rgap")                    # doctest: +SKIP
        >>> [r["invertible"] for r in rec.extras["rank_analysis"]]      # doctest: +SKIP
        [True, True, True, True, True, True, True]
    """

    @dataclass(frozen=True)
    class Config:
        """Settings of R-GAP.

        Attributes:
            solver: ``"gram"`` (Cholesky on the normal equations, fast, rank counted only
                when singular) or ``"svd"`` (dense SVD least squares, exact rank, slow).
            rank_tol: relative singular-value threshold for the numerical rank.
            prune_factor: a last-layer hypothesis whose accumulated residual exceeds
                ``prune_factor * max(best, prune_floor)`` is abandoned before the input layer.
            prune_floor: residual level below which hypotheses are never abandoned.
        """

        solver: str = "gram"
        rank_tol: float = 1e-7
        prune_factor: float = 100.0
        prune_floor: float = 1e-3

    requires = frozenset({"rgap_chain", "single_input", "gradient_or_one_step_delta"})

    def reconstruct(
        self,
        obs: Observation,
        *,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Reconstruction:
        """Runs the recursion (for every last-layer hypothesis) and keeps the most consistent."""
        self.check(obs)
        cfg = self.config
        if cfg.solver not in SOLVERS:
            raise ConfigError(f"rgap solver must be one of {sorted(SOLVERS)}, not {cfg.solver!r}")
        with Stopwatch() as clock:
            stages = parse_chain(obs)
            grads = observed_gradients(obs)
            starts = last_layer_starts(obs, stages[-1], grads)
            twins: list[tuple[Start, Start]] = []
            if positively_homogeneous(stages):
                # the second root of a label is the first one rescaled: solve it only once
                kept: dict[int | None, Start] = {}
                for st in starts:
                    if st.label in kept and st.logit is not None:
                        twins.append((st, kept[st.label]))
                    else:
                        kept[st.label] = st
                starts = list(kept.values())
            runs = [Recursion(stages, grads, st, SOLVERS[cfg.solver], cfg.rank_tol)
                    for st in starts]
            active = list(runs)
            step = 0
            while active:
                for run in active:
                    run.step()
                step += 1
                best_res = min(r.residual for r in active)
                # a hypothesis far less consistent than the best one is abandoned early
                active = [r for r in active if not r.done and
                          r.residual <= cfg.prune_factor * max(best_res, cfg.prune_floor)]
                if callback is not None:
                    callback(Progress(iteration=step, total=len(stages), loss=best_res))
            finished = [r for r in runs if r.done]
            candidates: list[tuple[Start, Tensor, Recursion]] = []
            for run in finished:
                candidates.append((run.start, flat_to_images(run.x.reshape(1, -1), obs), run))
            for twin, base in twins:
                twin_run = next((r for r in finished if r.start is base), None)
                if twin_run is not None and base.logit:
                    scale = float(twin.logit) / base.logit  # type: ignore[arg-type]
                    candidates.append(
                        (twin, flat_to_images(twin_run.x.reshape(1, -1) * scale, obs), twin_run)
                    )
            scores = [run.residual + range_violation(img) for _, img, run in candidates]
            best_index = min(range(len(candidates)), key=lambda i: scores[i])
            best_start, images, best_run = candidates[best_index]
        labels = None if best_start.label is None else torch.tensor([best_start.label])
        report = list(reversed(best_run.report))
        extras: dict[str, Any] = {
            "rank_analysis": report,
            "invertible": all(r["invertible"] for r in report),
            "hypothesis": best_start.note,
            "hypotheses": [
                {"note": st.note, "score": sc, "finished": True}
                for (st, _, _), sc in zip(candidates, scores, strict=True)
            ] + [
                {"note": r.start.note, "score": r.residual, "finished": False}
                for r in runs if not r.done
            ],
            "unclamped_range": [float(images.min()), float(images.max())],
            "batch_size_assumed": obs.batch_size is None,
        }
        return Reconstruction(
            images=to_unit_range(images, model_dtype(obs.model)),
            labels=labels,
            attack=self.name,
            config=self.config_dict(),
            trace=Trace(restart_scores=scores, best_restart=best_index,
                        wall_time=clock.elapsed),
            extras=extras,
        )


def rank_table(rank_analysis: list[dict[str, Any]]) -> str:
    """Formats ``extras["rank_analysis"]`` as a plain-text table (input layer first)."""
    head = f"{'layer':<12}{'type':<8}{'unknowns':>9}{'grad':>8}{'fwd':>7}{'rank':>7}{'inv':>5}"
    lines = [head]
    for r in rank_analysis:
        lines.append(
            f"{r['layer']:<12}{r['type']:<8}{r['unknowns']:>9}{r['gradient_constraints']:>8}"
            f"{r['forward_constraints']:>7}{r['rank']:>7}{'yes' if r['invertible'] else 'no':>5}"
        )
    return "\n".join(lines)
