"""The ``gradinversion`` recipe: the paper's defaults, overrides, and its priors in the engine."""

import warnings

import pytest
import torch

import gradleak as gl
from gradleak.attacks import ATTACKS
from gradleak.errors import ConfigError
from gradleak.priors import PriorContext
from gradleak.priors.bn import BNPrior
from gradleak.priors.group import GroupConsistencyPrior


def _obs(model: torch.nn.Module, n: int = 3) -> tuple[gl.Observation, gl.GroundTruth]:
    x, y = gl.data.load("sample", size=16, n=n, seed=4, unique_labels=True)
    return gl.simulate(model, x, y)


def test_paper_defaults_and_overrides() -> None:
    cls = ATTACKS.get("gradinversion_paper")
    cfg = cls.Config()
    assert (cfg.optimizer, cfg.schedule, cfg.distance) == ("adam", "cosine", "l2")
    assert cfg.labels == "yin"
    # breaching's preset: 1e-4 * 0.5 * ||.||^2, 50 warm-up iterations, TV of the normalised input
    assert cfg.grad_scale == 5e-5 and cfg.iterations == 20_000 and cfg.restarts == 4
    assert cfg.warmup == 50 and cfg.langevin == 0.01 and cfg.lr == 0.1
    assert set(cfg.priors) == {"tv", "l2", "bn", "group"}
    assert cfg.priors["tv"] == {"weight": 1e-4, "space": "input"}
    assert cfg.priors["l2"] == 1e-6 and cfg.priors["group"] == 0.01
    assert cfg.priors["bn"]["weight"] == 0.1
    att = cls(iterations=7, priors={"tv": 1e-3}, langevin=0.0)
    assert att.config.iterations == 7 and dict(att.config.priors) == {"tv": 1e-3}
    with pytest.raises(ConfigError, match="no setting"):
        cls(bogus=1)
    with pytest.raises(ConfigError, match="grad_scale"):
        cls(grad_scale=0.0)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ConfigError, match="langevin"):
            cls(langevin=bad)


def test_default_variant_is_scale_free() -> None:
    cfg = ATTACKS.get("gradinversion").Config()
    paper = ATTACKS.get("gradinversion_paper").Config()
    assert cfg.normalize_distance and cfg.grad_scale == 1.0 and cfg.langevin == 0.0
    assert not paper.normalize_distance
    assert cfg.priors["tv"]["weight"] == pytest.approx(0.1)
    # the same method: only the weights differ
    assert (cfg.optimizer, cfg.schedule, cfg.distance, cfg.labels, cfg.iterations) == (
        paper.optimizer, paper.schedule, paper.distance, paper.labels, paper.iterations)


def test_normalized_distance_starts_every_restart_at_one() -> None:
    model = gl.models.create("convnet", width=4, in_shape=(3, 16, 16))
    obs, _ = _obs(model, n=2)
    common = {"iterations": 1, "restarts": 3, "priors": {}, "lr": 1e-12, "boxed": False}
    rec = gl.reconstruct(obs, attack="gradinversion", seed=3, **common)
    assert rec.trace.losses[0] == pytest.approx([1.0, 1.0, 1.0], rel=1e-5)
    raw = gl.reconstruct(obs, attack="gradinversion", normalize_distance=False, seed=3, **common)
    assert raw.trace.losses[0] == pytest.approx(raw.trace.restart_scores, rel=1e-3)
    assert rec.trace.restart_scores == pytest.approx(raw.trace.restart_scores, rel=1e-5)


def test_runs_on_bn_convnet_with_recovered_labels() -> None:
    model = gl.models.create("convnet", width=4, in_shape=(3, 16, 16))
    obs, truth = _obs(model)
    rec = gl.reconstruct(obs, attack="gradinversion", iterations=3, restarts=2, seed=1)
    assert rec.images.shape == truth.images.shape
    assert float(rec.images.min()) >= 0.0 and float(rec.images.max()) <= 1.0
    assert rec.labels.tolist() == sorted(truth.labels.tolist())  # yin, unique labels
    assert rec.extras["labels_source"] == "yin"
    assert len(rec.trace.restart_scores) == 2


def test_grad_scale_multiplies_the_matching_distance() -> None:
    model = gl.models.create("convnet", width=4, in_shape=(3, 16, 16))
    obs, _ = _obs(model, n=2)
    common = {"iterations": 1, "restarts": 1, "priors": {}, "langevin": 0.0, "lr": 1e-12}
    a = gl.reconstruct(obs, attack="gradinversion_paper", grad_scale=1.0, seed=3, **common)
    b = gl.reconstruct(obs, attack="gradinversion_paper", grad_scale=1e-4, seed=3, **common)
    assert b.trace.restart_scores[0] == pytest.approx(1e-4 * a.trace.restart_scores[0], rel=1e-4)


def test_priors_see_engine_statistics_and_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    bn_call, group_call = BNPrior.__call__, GroupConsistencyPrior.__call__

    def bn_spy(self: BNPrior, x: torch.Tensor, ctx: PriorContext) -> torch.Tensor:
        seen["bn_layers"] = len(ctx.bn_inputs)
        seen["bn_shape"] = tuple(ctx.bn_inputs[0][0].shape)
        return bn_call(self, x, ctx)

    def group_spy(self: GroupConsistencyPrior, x: torch.Tensor, ctx: PriorContext) -> torch.Tensor:
        seen["group_labels"] = self._labels
        seen["x_range"] = (float(x.detach().min()), float(x.detach().max()))
        return group_call(self, x, ctx)

    monkeypatch.setattr(BNPrior, "__call__", bn_spy)
    monkeypatch.setattr(GroupConsistencyPrior, "__call__", group_spy)
    model = gl.models.create("convnet", width=4, in_shape=(3, 16, 16))
    obs, truth = _obs(model)
    gl.reconstruct(obs, attack="gradinversion", iterations=2, restarts=2)
    assert seen["bn_layers"] == 8 and seen["bn_shape"] == (2, 4)  # 8 BN layers, (R, C)
    assert seen["group_labels"].tolist() == sorted(truth.labels.tolist())
    lo, hi = seen["x_range"]
    assert lo >= 0.0 and hi <= 1.0


def test_bn_free_model_warns_and_runs() -> None:
    model = gl.models.create("lenet", in_shape=(3, 16, 16))
    obs, truth = _obs(model, n=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = gl.reconstruct(obs, attack="gradinversion", iterations=2, restarts=1,
                             labels="ilrg")
    assert any("BatchNorm" in str(w.message) for w in caught)
    assert rec.images.shape == truth.images.shape
