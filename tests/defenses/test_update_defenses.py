"""Analytic properties of the update defenses: noise variance, exact sparsity, levels."""

from __future__ import annotations

import torch

import gradleak as gl


def _apply(name: str, update: list[torch.Tensor], seed: int = 0, **settings: object
           ) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return gl.defenses.create(name, **settings).apply(update, generator=gen)


def test_gaussian_and_laplace_variance_in_two_sided_bands() -> None:
    upd = [torch.full((40_000,), 0.3), torch.zeros(10, 100)]
    for seed in (0, 1):
        g = _apply("noise", upd, seed, sigma=0.2)
        lap = _apply("laplace", upd, seed, scale=0.2)
        for out, var in ((g, 0.04), (lap, 2 * 0.04)):
            diff = torch.cat([(o - u).flatten() for o, u in zip(out, upd, strict=True)])
            assert 0.97 * var < float(diff.var()) < 1.03 * var
            assert abs(float(diff.mean())) < 0.01
    assert not torch.equal(_apply("noise", upd, 0, sigma=0.2)[0], _apply("noise", upd, 1,
                                                                           sigma=0.2)[0])


def test_top_k_pruning_keeps_exactly_the_largest_even_with_ties() -> None:
    g = torch.Generator().manual_seed(0)
    dense = torch.randn(7, 13, generator=g)
    ties = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, -1.0, 2.0, 0.0, 0.0, 0.0])
    for ratio in (0.0, 0.3, 0.9, 0.99):
        out_dense, out_ties = _apply("prune", [dense, ties], ratio=ratio)
        for inp, out in ((dense, out_dense), (ties, out_ties)):
            kept = inp.numel() - int(ratio * inp.numel())
            mask = out != 0
            if inp is dense:
                assert int(mask.sum()) == kept
                # every kept magnitude >= every dropped one
                if kept < inp.numel():
                    assert float(inp.abs()[mask].min()) >= float(inp.abs()[~mask].max())
            assert torch.equal(out[mask], inp[mask])
    (half,) = _apply("prune", [ties], ratio=0.5)
    assert torch.equal(half[4:7], ties[4:7])


def test_random_sparsification_has_exact_sparsity_and_rescales() -> None:
    u = torch.randn(50, 20) + 5.0
    for ratio in (0.25, 0.9):
        (out,) = _apply("sparsify", [u], ratio=ratio)
        assert int((out != 0).sum()) == u.numel() - int(ratio * u.numel())
        (scaled,) = _apply("sparsify", [u], ratio=ratio, rescale=True)
        keep = (u.numel() - int(ratio * u.numel())) / u.numel()
        torch.testing.assert_close(scaled[scaled != 0] * keep, u[scaled != 0])
    a, b = _apply("sparsify", [u], 0, ratio=0.5)[0], _apply("sparsify", [u], 1, ratio=0.5)[0]
    assert not torch.equal(a != 0, b != 0)


def test_sign_values() -> None:
    (out,) = _apply("sign", [torch.tensor([-2.0, 0.0, 0.5])])
    assert out.tolist() == [-1.0, 0.0, 1.0]


def test_quantisation_levels_and_unbiased_stochastic_rounding() -> None:
    g = torch.Generator().manual_seed(0)
    u = torch.randn(3000, generator=g) * 0.01
    for bits in (1, 2, 4):
        levels = 2**bits
        s = float(u.abs().max())
        grid = torch.tensor([s * (2 * j / (levels - 1) - 1) for j in range(levels)])
        for rounding in ("stochastic", "nearest"):
            (q,) = _apply("quantize", [u], bits=bits, rounding=rounding)
            dist = (q[:, None] - grid[None, :]).abs().min(dim=1).values
            assert float(dist.max()) < 1e-6 * s
            assert len(torch.unique(q)) <= levels
            step = 2 * s / (levels - 1)
            bound = step if rounding == "stochastic" else step / 2
            assert float((q - u).abs().max()) <= bound * (1 + 1e-5)
    # unbiased: the mean of many stochastic roundings approaches the input
    x = torch.linspace(-1, 1, 9)
    draws = torch.stack([_apply("quantize", [x], seed, bits=1)[0] for seed in range(400)])
    assert float((draws.mean(0) - x).abs().max()) < 0.15
    assert float((draws.mean(0) - x).abs().max()) > 0.0  # it is random, not the identity


def test_defenses_do_not_modify_their_input() -> None:
    u = torch.randn(5, 4)
    before = u.clone()
    for name in ("noise", "laplace", "clip", "prune", "sparsify", "sign", "quantize"):
        _apply(name, [u])
        assert torch.equal(u, before), name
