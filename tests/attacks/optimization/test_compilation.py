"""``compile``: the "auto" decision is static and sensible; a compiled run equals eager."""

from __future__ import annotations

import warnings

import pytest
import torch

import gradleak as gl
from gradleak.attacks.optimization.compilation import (
    AUTO_MIN_SECONDS,
    CompileMismatchError,
    _check_agreement,
    estimated_eager_seconds,
    forward_flops,
    resolve_compile,
    toolchain_available,
)
from gradleak.errors import ConfigError


def _obs(name: str, **kw: object) -> gl.Observation:
    model = gl.models.create(name, **kw)  # type: ignore[arg-type]
    x, y = gl.data.load("sample", size=32, n=4, seed=0)
    obs, _ = gl.simulate(model, x, y, share_labels=True)
    return obs


def test_forward_flops_of_a_linear_model_is_closed_form() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    obs, _ = gl.simulate(model, torch.rand(2, 3, 4, 4), torch.tensor([0, 1]))
    assert forward_flops(obs, 3) == 2 * 3 * 48 * 5  # one multiply-add per weight and input


def test_auto_compiles_long_runs_of_models_without_batchnorm_only() -> None:
    lenet, convnet = _obs("lenet"), _obs("convnet", width=16)
    mlp = _obs("mlp", width=512)
    est = estimated_eager_seconds(convnet, batch=4, restarts=1, iterations=24_000)
    assert est > estimated_eager_seconds(lenet, batch=4, restarts=1, iterations=24_000)
    assert est > 10 * estimated_eager_seconds(convnet, batch=4, restarts=1, iterations=1_000)
    expected = toolchain_available("cpu")
    # the ConvNet has BatchNorm: compiled it must take the batched path, no faster than eager
    assert resolve_compile("auto", convnet, batch=4, restarts=1, iterations=24_000) is False
    assert resolve_compile(True, convnet, batch=4, restarts=1, iterations=24_000) is expected
    assert resolve_compile("auto", lenet, batch=4, restarts=1, iterations=24_000) is expected
    assert resolve_compile("auto", mlp, batch=4, restarts=4, iterations=10**6) is expected
    assert resolve_compile("auto", lenet, batch=4, restarts=4, iterations=1_000) is False
    assert resolve_compile(False, convnet, batch=4, restarts=4, iterations=24_000) is False
    assert estimated_eager_seconds(lenet, batch=4, restarts=4, iterations=1_000) < AUTO_MIN_SECONDS


def test_compile_setting_is_validated() -> None:
    with pytest.raises(ConfigError, match="compile must be"):
        gl.attacks.create("ig", compile="yes")


@pytest.mark.skipif(not toolchain_available("cpu"), reason="no C++ compiler for inductor")
def test_compiled_run_matches_eager() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.Sigmoid(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 3, 3))
    torch.manual_seed(0)
    obs, _ = gl.simulate(model, torch.rand(2, 3, 8, 8), torch.tensor([0, 2]),
                         share_labels=True)
    kw = {"attack": "ig", "iterations": 6, "restarts": 2, "seed": 1, "optimizer": "adam"}
    eager = gl.reconstruct(obs, compile=False, **kw)
    compiled = gl.reconstruct(obs, compile=True, **kw)
    assert eager.extras["compiled"] is False and compiled.extras["compiled"] is True
    torch.testing.assert_close(torch.tensor(compiled.trace.losses),
                               torch.tensor(eager.trace.losses), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(compiled.images, eager.images, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not toolchain_available("cpu"), reason="no C++ compiler for inductor")
@pytest.mark.parametrize("restarts", [1, 2])
def test_compiled_batchnorm_model_with_soft_labels_matches_eager(restarts: int) -> None:
    # torch 2.13 disconnected the compiled distance from z / the soft labels here (BN model,
    # one restart or the per-restart loop): the engine now takes the batched path compiled
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.BatchNorm2d(4),
                                torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(36, 3))
    torch.manual_seed(0)
    obs, _ = gl.simulate(model, torch.rand(2, 3, 8, 8), torch.tensor([0, 2]))
    kw = {"attack": "ig", "iterations": 4, "restarts": restarts, "seed": 1, "optimizer": "adam"}
    eager = gl.reconstruct(obs, compile=False, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no fallback to eager
        compiled = gl.reconstruct(obs, compile=True, **kw)
    assert compiled.extras["compiled"] is True
    torch.testing.assert_close(torch.tensor(compiled.trace.losses),
                               torch.tensor(eager.trace.losses), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(compiled.images, eager.images, rtol=1e-3, atol=1e-4)


def test_agreement_check_rejects_a_disconnected_or_wrong_compiled_objective() -> None:
    z = torch.randn(2, 1, 3, requires_grad=True)
    targets = torch.tensor([1])

    def eager(zz: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, list[object]]:
        return (zz ** 2).sum((1, 2)), []

    def detached(zz: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, list[object]]:
        d, _ = eager(zz.detach(), t)
        return d + torch.zeros((), requires_grad=True), []

    def off(zz: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, list[object]]:
        return 1.1 * eager(zz, t)[0], []

    _check_agreement(eager, eager, z, targets)  # agrees with itself
    with pytest.raises(CompileMismatchError, match="does not depend"):
        _check_agreement(detached, eager, z, targets)
    with pytest.raises(CompileMismatchError, match="differs"):
        _check_agreement(off, eager, z, targets)


def test_engine_falls_back_to_eager_when_the_compiled_objective_disagrees(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken_compile(fn, **_kw):  # type: ignore[no-untyped-def]
        def run(z: torch.Tensor, t: torch.Tensor):  # type: ignore[no-untyped-def]
            d, stats = fn(z, t)
            return 2.0 * d, stats
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    torch.manual_seed(0)
    obs, _ = gl.simulate(model, torch.rand(1, 3, 2, 2), torch.tensor([1]), share_labels=True)
    kw = {"attack": "ig", "iterations": 3, "restarts": 2, "seed": 0}
    eager = gl.reconstruct(obs, compile=False, **kw)
    with pytest.warns(UserWarning, match="differs from the eager one"):
        rec = gl.reconstruct(obs, compile=True, **kw)
    assert rec.extras["compiled"] is False
    torch.testing.assert_close(torch.tensor(rec.trace.losses), torch.tensor(eager.trace.losses))
