"""``compile``: the "auto" decision is static and sensible; a compiled run equals eager."""

from __future__ import annotations

import pytest
import torch

import gradleak as gl
from gradleak.attacks.optimization.compilation import (
    AUTO_MIN_SECONDS,
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


def test_auto_compiles_long_runs_only() -> None:
    lenet, convnet = _obs("lenet"), _obs("convnet", width=16)
    est = estimated_eager_seconds(convnet, batch=4, restarts=1, iterations=24_000)
    assert est > estimated_eager_seconds(lenet, batch=4, restarts=1, iterations=24_000)
    assert est > 10 * estimated_eager_seconds(convnet, batch=4, restarts=1, iterations=1_000)
    expected = toolchain_available("cpu")
    assert resolve_compile("auto", convnet, batch=4, restarts=1, iterations=24_000) is expected
    assert resolve_compile("auto", lenet, batch=4, restarts=1, iterations=24_000) is expected
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
