"""When and how the engine compiles its objective with ``torch.compile``.

On CPU, compiling the objective (forward, simulated update, distance and, through them, the
double backward the attack differentiates) makes a step of DLG's LeNet at batch 4 about 1.1x
(1 restart) to 1.7x (4 restarts) faster than the eager engine
(``benchmarks/compare_breaching.py``); BatchNorm models gain nothing. The first call compiles
for a few seconds (more without torch's on-disk inductor cache). ``compile="auto"``
therefore compiles only runs of models without BatchNorm whose eager cost, estimated from the
model's forward FLOPs and the iteration count *before* running, is well above that one-off
cost. The decision depends only on the model, the config and the device (never on timings),
so the same run always takes the same path.

Compiled code always takes the batched ``torch.func`` path of
:class:`~gradleak.attacks.optimization.objective.MatchingObjective`: with
``torch.autograd.grad`` inside, torch 2.13 splits the compiled graph and returned distances
disconnected from the candidate images. As a safety net every new kind of compiled call is
checked once against the eager objective; on a mismatch the run continues eagerly and warns.
"""

from __future__ import annotations

import copy
import functools
import shutil
import warnings
import weakref
from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from gradleak.attacks.optimization.objective import MatchingObjective
from gradleak.priors.bn import batchnorm_layers
from gradleak.types import Observation

__all__ = [
    "AUTO_MIN_SECONDS",
    "CompileMismatchError",
    "compiled_objective",
    "estimated_eager_seconds",
    "resolve_compile",
    "toolchain_available",
]

#: ``compile="auto"`` compiles runs whose estimated eager time exceeds this many seconds.
AUTO_MIN_SECONDS = 60.0
#: Work of one step relative to one forward pass: forward, backward with graph, and the
#: double backward through both (measured: LeNet/ConvNet at batch 4 run about 7 forwards).
_STEP_FORWARDS = 7.0
#: Nominal eager rate (FLOP/s) of that work on one CPU core, and the per-step overhead (s):
#: ConvNet width 16, batch 4 measured 0.12 s per step, DLG's LeNet 4 ms (torch 2.13, 1 thread).
_CPU_FLOPS = 5e10
_CPU_STEP_OVERHEAD = 3e-3


@functools.cache
def toolchain_available(device_type: str) -> bool:
    """Whether torch's inductor backend can compile on ``device_type`` here.

    CPU kernels need a C++ compiler on the path; CUDA kernels need triton.
    """
    if device_type == "cpu":
        return any(shutil.which(cc) for cc in ("g++", "c++", "clang++"))
    if device_type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    return False


def forward_flops(obs: Observation, batch: int) -> float:
    """FLOPs of one forward pass of the observed model on ``batch`` inputs (matmul/conv)."""
    model = copy.deepcopy(obs.model).eval()  # a copy: a forward must not touch BN buffers
    param = obs.update[0]
    x = torch.zeros((batch, *obs.data_shape), dtype=param.dtype, device=param.device)
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(x)
    except Exception:  # noqa: BLE001 - an estimate only; the attack reports real errors
        return 0.0
    return float(counter.get_total_flops())


def estimated_eager_seconds(obs: Observation, *, batch: int, restarts: int,
                            iterations: int) -> float:
    """A rough eager CPU time of a run: FLOP-based work plus a per-step overhead."""
    step = _STEP_FORWARDS * forward_flops(obs, batch) * restarts / _CPU_FLOPS
    return iterations * (step + _CPU_STEP_OVERHEAD)


def resolve_compile(setting: bool | str, obs: Observation, *, batch: int, restarts: int,
                    iterations: int) -> bool:
    """Resolves the ``compile`` setting (True, False or ``"auto"``) for one run.

    ``"auto"`` compiles on CPU when the toolchain is there, the model has no BatchNorm layer
    (compiling gains nothing there) and the run's estimated eager time exceeds
    :data:`AUTO_MIN_SECONDS` (e.g. the ``ig`` recipe's 24 000 iterations on DLG's LeNet, not
    a 1 000-iteration test run). ``True`` compiles wherever torch can and warns
    (running eagerly) where it cannot.
    """
    device_type = obs.update[0].device.type
    if setting is True:
        if not toolchain_available(device_type):
            warnings.warn(f"compile=True: torch.compile cannot build kernels for "
                          f"{device_type!r} here (no C++ compiler / triton); running eagerly",
                          stacklevel=4)
            return False
        return True
    if setting is False or device_type != "cpu" or not toolchain_available("cpu"):
        return False
    if batchnorm_layers(obs.model):
        # compiled BN models must take the batched path (see ``_batching`` in the engine),
        # which compiled runs no faster than the eager per-restart loop with fused BN
        # (ConvNet w16, batch 4: 9.2 it/s compiled vs 8.9 for breaching; eager ~1.0x)
        return False
    est = estimated_eager_seconds(obs, batch=batch, restarts=restarts, iterations=iterations)
    return est >= AUTO_MIN_SECONDS


#: Compiled variants allowed per code object. Every objective compiles the same method, so
#: torch's default (8) would send the ninth observation of a session to eager code.
_RECOMPILE_LIMIT = 256


class CompileMismatchError(RuntimeError):
    """The compiled objective disagrees with the eager one (a torch.compile defect)."""


def _check_agreement(compiled: Callable[..., tuple[Tensor, object]],
                     eager: Callable[..., tuple[Tensor, object]], z: Tensor, targets: Tensor,
                     *, rtol: float = 2e-2) -> None:
    """Raises :class:`CompileMismatchError` unless both give the same distances and gradients.

    Run once per kind of call (the first one compiles). It catches torch.compile defects that
    are silent until autograd runs: torch 2.13 on CPU returned, for the per-restart autograd
    path, distances not connected to ``z`` or the soft labels ("... appears to not have been
    used in the graph"), and for BatchNorm models gradients that were simply different.
    Errors are relative in norm: float32 rounding alone made the compiled and the eager
    gradient of IG's BN ConvNet differ by up to ~0.6% (not a defect), while the defects
    differ by O(1).
    """
    results: list[tuple[Tensor, list[Tensor]]] = []
    for fn in (compiled, eager):
        zz = z.detach().clone().requires_grad_(z.requires_grad)
        tt = targets.detach().clone().requires_grad_(targets.requires_grad)
        wrt = [t for t in (zz, tt) if t.requires_grad]
        with torch.enable_grad():
            dist, _ = fn(zz, tt)
            if not wrt:
                results.append((dist.detach(), []))
                continue
            if not dist.requires_grad:
                raise CompileMismatchError("the compiled distance does not depend on the input")
            grads = torch.autograd.grad(dist.sum(), wrt, allow_unused=True)
        if any(g is None for g in grads):
            raise CompileMismatchError("the compiled distance does not depend on every input")
        results.append((dist.detach(), [g.detach() for g in grads]))  # type: ignore[union-attr]
    (dc, gc), (de, ge) = results
    for got, want in [(dc, de), *zip(gc, ge, strict=True)]:
        err = (got - want).norm() / want.norm().clamp_min(1e-30)
        if not bool(torch.isfinite(got).all()) or float(err) > rtol:
            raise CompileMismatchError(f"the compiled objective differs from the eager one "
                                       f"(relative error {float(err):.2g})")


# Compiled objectives, reused while their observation lives: torch.compile's guards tie a
# compiled function to the objective object, so a new object per call would recompile.
_COMPILED: dict[tuple[int, tuple[object, ...]], tuple[weakref.ref, MatchingObjective]] = {}


def compiled_objective(obs: Observation, key: tuple[object, ...],
                       build: Callable[[], MatchingObjective]) -> MatchingObjective:
    """The cached compiled objective of ``obs`` for ``key``, or a new one (eager on failure).

    Its ``compiled`` attribute says whether it runs compiled code: False when torch.compile
    is unavailable, fails, or disagrees with the eager objective at the first call.
    """
    entry = _COMPILED.get((id(obs), key))
    if entry is not None and entry[0]() is obs:
        return entry[1]
    objective = build()
    eager = objective.evaluate
    try:
        # static shapes: automatic dynamic shapes (after a second observation of another
        # shape) fail in inductor for the double backward (torch 2.13, "Cannot convert
        # expression to float")
        compiled = torch.compile(eager, dynamic=False)
    except Exception as exc:  # pragma: no cover - depends on the toolchain
        warnings.warn(f"torch.compile unavailable ({exc}); running eagerly", stacklevel=4)
        return objective
    checked: set[tuple[object, ...]] = set()
    failed: list[bool] = []

    def evaluate(z: Tensor, targets: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        if not failed:  # compilation happens at the first call; fall back if it fails
            try:
                # each new kind of call (a run's distance, label mode, grad mode, path)
                # compiles a new graph: compile it under the raised limit (only then: the
                # config patch costs ~0.3 ms, too much per step) and check it against eager
                kind = (tuple(z.shape), z.requires_grad, targets.dtype,
                        targets.requires_grad, id(objective.distance), objective.vectorized)
                if kind not in checked:
                    with torch._dynamo.config.patch(recompile_limit=_RECOMPILE_LIMIT):
                        _check_agreement(compiled, eager, z, targets)
                    checked.add(kind)
                return compiled(z, targets)
            except Exception as exc:  # noqa: BLE001 - any failure: the eager path is exact
                failed.append(True)
                objective.compiled = False
                warnings.warn(f"torch.compile failed ({type(exc).__name__}: {exc}); "
                              "running eagerly", stacklevel=2)
        return eager(z, targets)

    objective.evaluate = evaluate  # type: ignore[method-assign]
    objective.compiled = True
    cache_key = (id(obs), key)
    _COMPILED[cache_key] = (weakref.ref(obs, lambda _r: _COMPILED.pop(cache_key, None)), objective)
    return objective
