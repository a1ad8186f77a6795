"""Training pairs match the client's update; a few steps reduce the loss; resume is exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import gradleak as gl
from gradleak.errors import ConfigError
from gradleak.learned import HeadSettings, PairMaker, hungarian_mse
from gradleak.learned.heads import build_head
from gradleak.learned.spec import layout_of


@pytest.mark.parametrize(("name", "defense"), [("lenet", None), ("convnet", "prune")])
def test_pairs_equal_the_simulated_client_update(name: str, defense: str | None) -> None:
    kwargs = {"width": 4} if name == "convnet" else {}
    model = gl.models.create(name, in_shape=(1, 16, 16), **kwargs)
    x = torch.rand(3, 2, 1, 16, 16)
    y = torch.randint(0, 10, (3, 2))
    dfn = gl.defenses.create(defense, ratio=0.8) if defense else None
    maker = PairMaker(model, defense=dfn)
    upd = maker.updates(x, y, generator=torch.Generator().manual_seed(5))
    for g in range(3):  # the loop reference: one simulate() per group (BatchNorm included)
        obs, _ = gl.simulate(model, x[g], y[g], defense=dfn)
        for u, ref in zip(upd, obs.update, strict=True):
            assert torch.allclose(u[g], ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("head", "batch"), [("mlp", 1), ("mlp", 2), ("rows", 2), ("units", 2)])
def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(head: str, batch: int) -> None:
    model = gl.models.create("lenet", in_shape=(1, 8, 8))
    layout, _ = layout_of(model, (1, 8, 8), batch, 1)
    torch.manual_seed(0)
    net = build_head(head, layout, HeadSettings(hidden=64, hash_dim=256))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, batch, 1, 8, 8, generator=gen)
    y = torch.randint(0, 10, (16, batch), generator=gen)
    upd = PairMaker(model).updates(x, y, generator=gen)
    net.calibrate(upd, y)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    before = float(hungarian_mse(net(upd, y), x)[0].detach())
    for _ in range(40):
        loss, _ = hungarian_mse(net(upd, y), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = float(hungarian_mse(net(upd, y), x)[0].detach())
    assert after < 0.85 * before
    # control: with a zero learning rate nothing changes
    frozen = float(hungarian_mse(net(upd, y), x)[0].detach())
    assert frozen == pytest.approx(after)


def test_resume_continues_exactly(tmp_path: Path) -> None:
    model = gl.models.create("lenet", in_shape=(1, 8, 8))
    aux = torch.rand(48, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    common = {"hidden": 32, "epochs": 3, "hash_dim": 128, "groups_per_step": 8}
    full = gl.learned.train(model, aux, **common)
    ckpt = tmp_path / "inv.safetensors"
    with pytest.raises(KeyboardInterrupt):
        def stop(report: gl.learned.EpochReport) -> None:
            if report.val_psnr is not None and report.epoch == 2:
                raise KeyboardInterrupt
        gl.learned.train(model, aux, checkpoint=str(ckpt), callback=stop, **common)
    assert gl.learned.load(ckpt).training["epochs_done"] == 1
    resumed = gl.learned.train(model, aux, checkpoint=str(ckpt), resume=True, **common)
    assert resumed.training["epochs_done"] == 3
    for a, b in zip(full.head.state_dict().values(), resumed.head.state_dict().values(),
                    strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ConfigError, match="other settings"):
        gl.learned.train(model, aux, checkpoint=str(ckpt), resume=True,
                         **{**common, "hidden": 16})


def test_bad_settings_are_refused() -> None:
    model = gl.models.create("lenet", in_shape=(1, 8, 8))
    aux = torch.rand(8, 1, 8, 8)
    with pytest.raises(ConfigError):
        gl.learned.train(model, aux, nonsense=1)
    with pytest.raises(ConfigError):
        gl.learned.train(model, aux, batch_size=0)
    with pytest.raises(gl.DataError):
        gl.learned.train(model, aux * 3)


class _DataStageDefense(gl.defenses.Defense):
    """A defense that acts on the batch, not on the update (e.g. MixUp)."""

    name = "fake-mixup"
    stage = "data"

    def apply(self, update: list[torch.Tensor], *, generator: torch.Generator
              ) -> list[torch.Tensor]:
        return update


def test_defenses_that_do_not_act_on_the_update_are_refused() -> None:
    model = gl.models.create("lenet", in_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="acts on the client's data"):
        PairMaker(model, defense=_DataStageDefense())


def test_aux_by_dataset_name_uses_the_models_input_shape() -> None:
    model = gl.models.create("lenet", in_shape=(1, 8, 8))
    inv = gl.learned.train(model, "digits", hidden=16, hash_dim=64, epochs=1,
                           calibration_groups=32)
    assert inv.image_shape == (1, 8, 8)
    assert inv.training["history"][0]["val_psnr"] is not None
    custom = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with pytest.raises(ConfigError, match="image size"):
        gl.learned.train(custom, "digits", hidden=16, epochs=1)
