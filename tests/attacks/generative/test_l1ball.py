"""The l1-ball projection against a literal bisection reference."""

from __future__ import annotations

import pytest
import torch

from gradleak.attacks.generative.l1ball import project_l1_ball


def _reference(v: torch.Tensor, r: float) -> torch.Tensor:
    """Bisection on the soft threshold: the smallest theta with ||soft(v, theta)||_1 <= r."""
    if float(v.abs().sum()) <= r:
        return v.clone()
    lo, hi = 0.0, float(v.abs().max())
    for _ in range(200):
        mid = (lo + hi) / 2
        if float((v.abs() - mid).clamp_min(0).sum()) > r:
            lo = mid
        else:
            hi = mid
    return v.sign() * (v.abs() - hi).clamp_min(0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_bisection_reference(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(6, 40, generator=g, dtype=torch.float64) * 3
    radii = torch.rand(6, generator=g, dtype=torch.float64) * 60
    out = project_l1_ball(v, radii)
    for i in range(6):
        ref = _reference(v[i], float(radii[i]))
        assert torch.allclose(out[i], ref, atol=1e-9)
        assert float(out[i].abs().sum()) <= float(radii[i]) + 1e-9


def test_points_inside_are_unchanged_and_zero_radius_gives_zero() -> None:
    v = torch.tensor([[0.1, -0.2, 0.3], [1.0, 2.0, -3.0]])
    out = project_l1_ball(v, torch.tensor([1.0, 0.0]))
    assert torch.equal(out[0], v[0])
    assert torch.equal(out[1], torch.zeros(3))
