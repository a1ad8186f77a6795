"""The Hungarian loss equals the literal minimum over all permutations."""

from __future__ import annotations

import itertools

import pytest
import torch

from gradleak.learned import hungarian_mse


def literal_min(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over groups of min over permutations of the mean matched MSE (brute force)."""
    per_group = []
    for p, t in zip(pred, target, strict=True):
        b = len(p)
        best = min(
            sum(float(((p[i] - t[perm[i]]) ** 2).mean()) for i in range(b)) / b
            for perm in itertools.permutations(range(b))
        )
        per_group.append(best)
    return torch.tensor(per_group, dtype=torch.float64).mean()


@pytest.mark.parametrize("b", [1, 2, 3, 4])
def test_equals_literal_minimum_over_permutations(b: int) -> None:
    gen = torch.Generator().manual_seed(b)
    pred = torch.rand(6, b, 1, 3, 3, generator=gen, dtype=torch.float64)
    target = torch.rand(6, b, 1, 3, 3, generator=gen, dtype=torch.float64)
    loss, assign = hungarian_mse(pred, target)
    assert abs(float(loss) - float(literal_min(pred, target))) < 1e-12
    assert sorted(assign[0].tolist()) == list(range(b))


def test_invariant_to_the_order_of_targets_and_differentiable() -> None:
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 4, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.rand(3, 4, 8, generator=gen, dtype=torch.float64)
    loss, _ = hungarian_mse(pred, target)
    shuffled, _ = hungarian_mse(pred, target[:, [2, 0, 3, 1]])
    assert abs(float(loss.detach()) - float(shuffled.detach())) < 1e-12
    loss.backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0
    exact, assign = hungarian_mse(target[:, [1, 3, 0, 2]], target)
    assert float(exact) == 0.0 and assign[0].tolist() == [1, 3, 0, 2]
