"""The accuracy cost of a defense: a brief training with and without it."""

from __future__ import annotations

import pytest
import torch

import gradleak as gl

from .helpers import TinyCNN


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes: bright left, middle or right columns of a 6x6 image, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = 0.2 * torch.rand(n, 1, 6, 6, generator=g)
    for i in range(n):
        x[i, 0, :, 2 * int(y[i]):2 * int(y[i]) + 2] += 0.7
    return x.clamp(0, 1), y


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return (*_blobs(96, 0), *_blobs(60, 1))


def test_clean_training_learns_and_heavy_noise_costs_accuracy() -> None:
    def factory() -> torch.nn.Module:
        return TinyCNN()

    res = gl.defenses.utility(factory, _data(), {"name": "noise", "sigma": 3.0}, epochs=3,
                              batch_size=8, lr=0.5, seed=0)
    assert res.rounds == 36
    assert res.accuracy_clean >= 0.9
    assert res.accuracy_defended <= res.accuracy_clean - 0.2
    assert res.cost == pytest.approx(res.accuracy_clean - res.accuracy_defended)
    mild = gl.defenses.utility(factory, _data(), {"name": "clip", "max_norm": 100.0},
                               epochs=3, batch_size=8, lr=0.5, seed=0,
                               clean_accuracy=res.accuracy_clean)
    assert mild.accuracy_defended == res.accuracy_clean  # a clip that never binds is free


def test_utility_reports_dp_epsilon_and_refuses_bad_settings() -> None:
    spec = {"name": "dpsgd", "noise_multiplier": 1.0, "sample_rate": 8 / 96, "steps": 6,
            "accountant": "rdp"}
    res = gl.defenses.utility(TinyCNN, _data(), spec, epochs=0.5, batch_size=8, lr=0.5)
    assert res.rounds == 6 and res.report["steps"] == 6 and res.report["epsilon"] > 0
    with pytest.raises(gl.errors.ConfigError):
        gl.defenses.utility(TinyCNN, _data(), None, epochs=0)
    with pytest.raises(gl.errors.ConfigError):
        gl.defenses.utility(TinyCNN, (torch.zeros(1),), None)  # type: ignore[arg-type]
