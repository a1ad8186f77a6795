"""Feature hashing: linear, equal to its definition, count-sketch unbiased for inner products."""

from __future__ import annotations

import pytest
import torch

from gradleak.errors import ConfigError, DataError
from gradleak.learned import FeatureHash


def literal_hash(g: torch.Tensor, index: torch.Tensor, sign: torch.Tensor, k: int) -> torch.Tensor:
    """sketch_j = sum over i with h(i) = j of s(i) g_i, as a plain loop."""
    out = [0.0] * k
    for i in range(len(g)):
        out[int(index[i])] += float(sign[i]) * float(g[i])
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("signed", [True, False])
def test_matches_definition_on_a_small_vector(signed: bool) -> None:
    fh = FeatureHash(11, 4, signed=signed, seed=3).double()
    g = torch.randn(11, dtype=torch.float64)
    want = literal_hash(g, fh.index, fh.sign, 4)
    assert torch.allclose(fh(g.unsqueeze(0))[0], want, atol=1e-12)
    if not signed:
        assert bool((fh.sign == 1).all())
    else:
        assert set(fh.sign.tolist()) == {-1.0, 1.0}


def test_linear_and_batched() -> None:
    fh = FeatureHash(50, 7, seed=1).double()
    x, y = torch.randn(3, 50, dtype=torch.float64), torch.randn(3, 50, dtype=torch.float64)
    assert torch.allclose(fh(2.5 * x - 0.5 * y), 2.5 * fh(x) - 0.5 * fh(y), atol=1e-12)
    assert torch.allclose(fh(x.view(3, 1, 50)).view(3, 7), fh(x))


def test_stores_only_the_map_never_a_dense_matrix() -> None:
    fh = FeatureHash(10_000, 64, seed=0)
    sizes = [b.numel() for b in fh.buffers()]
    assert sizes == [10_000, 10_000]  # index and sign, O(d), not d x k


def test_count_sketch_preserves_inner_products_in_expectation() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(40, generator=gen, dtype=torch.float64) + 0.5
    b = 0.6 * a + torch.randn(40, generator=gen, dtype=torch.float64)
    true = float(a @ b)
    signed, unsigned = [], []
    for seed in range(1500):
        s = FeatureHash(40, 8, signed=True, seed=seed).double()
        u = FeatureHash(40, 8, signed=False, seed=seed).double()
        signed.append(float(s(a) @ s(b)))
        unsigned.append(float(u(a) @ u(b)))
    est = torch.tensor(signed, dtype=torch.float64)
    stderr = float(est.std()) / len(signed) ** 0.5
    assert abs(float(est.mean()) - true) < 4 * stderr
    # control: without signs the cross terms do not cancel and the estimate is biased
    unsigned_bias = float(torch.tensor(unsigned).mean()) - true
    assert abs(unsigned_bias) > 10 * stderr


def test_bad_input_and_tampered_map() -> None:
    fh = FeatureHash(5, 3)
    with pytest.raises(ConfigError):
        fh(torch.zeros(1, 6))
    with pytest.raises(ConfigError):
        FeatureHash(0, 3)
    fh.index[0] = 99
    with pytest.raises(DataError):
        fh.validate()
