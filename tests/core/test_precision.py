"""full_precision turns TF32 off inside and restores the caller's flags after."""

import warnings

import pytest
import torch

from gradleak.precision import full_precision


def _flags() -> tuple[bool, bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize("before", [(True, True), (True, False), (False, False)])
def test_tf32_off_inside_and_restored(before: tuple[bool, bool]) -> None:
    saved = _flags()
    try:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
        with full_precision():
            assert _flags() == (False, False)
        assert _flags() == before
        with pytest.raises(RuntimeError), full_precision():
            raise RuntimeError("boom")
        assert _flags() == before
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_attacks_run_in_full_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    import gradleak as gl

    seen: list[tuple[bool, bool]] = []
    model = gl.models.create("lenet", num_classes=4, seed=0)
    obs, _ = gl.simulate(model, torch.rand(1, 3, 32, 32), torch.tensor([1]))

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(_flags())
        return real(*args, **kwargs)

    from gradleak.attacks.optimization import stage  # where the engine builds its optimizer

    real = stage.create_optimizer
    monkeypatch.setattr(stage, "create_optimizer", spy)
    gl.reconstruct(obs, attack="ig", iterations=1, restarts=1, seed=0)
    assert seen == [(False, False)]
