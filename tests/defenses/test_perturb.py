import torch

import gradleak as gl


def test_clip_bounds_global_norm() -> None:
    upd = [torch.ones(3) * 2, torch.ones(4) * 2]
    out = gl.defenses.create("clip", max_norm=1.0).apply(upd, generator=torch.Generator())
    norm = torch.sqrt(sum((u**2).sum() for u in out))
    torch.testing.assert_close(norm, torch.tensor(1.0))
    small = gl.defenses.create("clip", max_norm=100.0).apply(upd, generator=torch.Generator())
    assert torch.equal(small[0], upd[0])


def test_prune_keeps_largest_entries() -> None:
    upd = [torch.tensor([0.1, -5.0, 0.2, 3.0])]
    (out,) = gl.defenses.create("prune", ratio=0.5).apply(upd, generator=torch.Generator())
    assert torch.equal(out, torch.tensor([0.0, -5.0, 0.0, 3.0]))


def test_noise_scale() -> None:
    upd = [torch.zeros(20000)]
    gen = torch.Generator().manual_seed(0)
    (out,) = gl.defenses.create("noise", sigma=0.1).apply(upd, generator=gen)
    assert 0.095 < float(out.std()) < 0.105
