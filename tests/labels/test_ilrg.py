"""iLRG: exact counts when the class-wise approximations are exact; repeated labels; refusals."""

import pytest
import torch

import gradleak as gl
from gradleak.errors import ConfigError, ThreatModelError
from gradleak.labels.common import integer_counts
from gradleak.labels.ilrg import ILRGLabels, conditioned_probabilities, solve_counts

from .helpers import counts, linear_model, observe, photo_batch, random_labels


def test_identical_features_give_exact_repeated_counts() -> None:
    # every sample has the same features, so dL/dW_c / dL/db_c is exactly that feature vector
    # and every class-wise probability is exact: the linear system has the true counts as
    # its unique solution, with random (non-uniform) weights
    k = 7
    y = torch.tensor([0, 0, 0, 2, 2, 5, 5, 5, 5])
    x = torch.rand(1, 1, 1, 20, dtype=torch.float64).expand(len(y), -1, -1, -1).contiguous()
    model = linear_model(20, k, zero=False, seed=3).double()
    obs = observe(model, x, y)
    strat = ILRGLabels(refine=0)
    raw = strat.estimate_counts(obs)
    torch.testing.assert_close(raw, torch.bincount(y, minlength=k).double(), atol=1e-8, rtol=0)
    assert gl.recover_labels(obs, strategy="ilrg").tolist() == sorted(y.tolist())
    probs = strat.probabilities(obs)
    with torch.no_grad():
        true_p = torch.softmax(model(x[:1]).double(), dim=1)[0]
    torch.testing.assert_close(probs, true_p.expand(k, k), atol=1e-8, rtol=0)


def test_linear_system_against_hand_computed_counts() -> None:
    # bias gradient of a batch with counts n and per-class mean probabilities P:
    # B * db = P^T n - n; solving must return n
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]], dtype=torch.float64)
    n = torch.tensor([3.0, 0.0, 2.0], dtype=torch.float64)
    b = int(n.sum())
    bias_grad = (probs.T @ n - n) / b
    torch.testing.assert_close(solve_counts(probs, bias_grad, b), n, atol=1e-10, rtol=0)


def test_untrained_mlp_on_photos_with_repeated_labels() -> None:
    x, y = gl.data.load("sample", size=32, n=8, seed=1, classes=[2, 6])
    model = gl.models.create("mlp", depth=2, width=256, num_classes=10)
    obs = observe(model, x, y)
    assert counts(gl.recover_labels(obs, strategy="ilrg"), 10) == counts(y, 10)


def test_conditioning_fix_only_replaces_ill_conditioned_rows() -> None:
    probs = torch.eye(3, dtype=torch.float64) * 0.5 + 0.5 / 3
    bias_grad = torch.tensor([1e-9, -0.3, 0.3], dtype=torch.float64)
    fixed = conditioned_probabilities(probs, bias_grad, torch.tensor([1.0, 2.0, 0.0]), 3, 4.0)
    torch.testing.assert_close(fixed[1:], probs[1:])
    assert not torch.allclose(fixed[0], probs[0])
    torch.testing.assert_close(fixed[0].sum(), torch.tensor(1.0, dtype=torch.float64))


def test_integer_counts_sum_to_batch_and_stay_non_negative() -> None:
    raw = torch.tensor([2.6, -0.4, 0.45, 1.2, 0.1], dtype=torch.float64)
    out = integer_counts(raw, 4)
    assert out.tolist() == [3, 0, 0, 1, 0]
    out = integer_counts(torch.tensor([2.4, 2.4, 2.4]), 6)
    assert int(out.sum()) == 6 and bool((out >= 0).all())
    assert integer_counts(torch.tensor([0.2, 0.3]), 3).sum() == 3


def test_refusals() -> None:
    x, y = torch.rand(3, 1, 1, 8), torch.tensor([0, 1, 1])
    with pytest.raises(ThreatModelError, match="bias"):
        gl.recover_labels(observe(linear_model(8, 3, bias=False), x, y), strategy="ilrg")
    with pytest.raises(ThreatModelError, match="batch size"):
        gl.recover_labels(observe(linear_model(8, 3), x, y, share_batch_size=False),
                          strategy="ilrg")
    with pytest.raises(ThreatModelError, match="cross-entropy"):
        gl.recover_labels(observe(linear_model(8, 1), x, torch.tensor([0, 1, 1]),
                                  loss="logistic"), strategy="ilrg")
    with pytest.raises(ConfigError):
        gl.recover_labels(observe(linear_model(8, 3), x, y), strategy="ilrg", refine=-1)
    with pytest.raises(ConfigError):
        gl.recover_labels(observe(linear_model(8, 3), x, y), strategy="ilrg",
                          kappa_relative=0.5)
    conv_only = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 1), torch.nn.Flatten(1),
                                    torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten())
    with pytest.raises(ThreatModelError, match="nn.Linear"):
        gl.recover_labels(observe(conv_only, torch.rand(2, 1, 3, 3), torch.tensor([0, 0])),
                          strategy="ilrg")


def test_fedavg_one_step_matches_gradient() -> None:
    x, y = gl.data.load("sample", size=32, n=6, seed=2, classes=[1, 4])
    model = gl.models.create("mlp", depth=2, width=128)
    a = gl.recover_labels(observe(model, x, y), strategy="ilrg")
    b = gl.recover_labels(observe(model, x, y, local_steps=1, local_batch_size=6,
                                  local_lr=0.3), strategy="ilrg")
    assert a.tolist() == b.tolist() == sorted(y.tolist())


def test_conditioning_fix_when_no_row_passes_kappa_max() -> None:
    # every class present about as often as predicted: all bias gradients are small, so no
    # row passes kappa_max. The least-amplified rows (1 and 2, within a factor 2) are kept
    # and row 0 is replaced by their 1/kappa-weighted mean -- not by p_bar, which is a fixed
    # point of the solve (the counts would come back unchanged).
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.3, 0.4, 0.3], [0.2, 0.3, 0.5]],
                         dtype=torch.float64)
    bias_grad = torch.tensor([0.002, -0.02, 0.018], dtype=torch.float64)
    n = torch.tensor([10.0, 10.0, 10.0], dtype=torch.float64)
    fixed = conditioned_probabilities(probs, bias_grad, n, 30, 4.0)
    torch.testing.assert_close(fixed[1:], probs[1:])
    # row 0 is a convex combination of rows 1 and 2
    lam = (fixed[0, 0] - probs[2, 0]) / (probs[1, 0] - probs[2, 0])
    assert 0.0 < float(lam) < 1.0
    torch.testing.assert_close(fixed[0], lam * probs[1] + (1 - lam) * probs[2])
    # the solve moves away from the input counts
    assert not torch.allclose(solve_counts(fixed, bias_grad, 30), n, atol=1e-3)


# --------------------------------------------------------------------------- published setting
# Ma et al. report count (LnAcc) >= 0.99 and existence (LeAcc) 1.0 accuracy for untrained
# FCN-3 (MNIST) and LeNet-5 (CIFAR-100) at batch 24. Bundled photos stand in for the datasets;
# labels are drawn independently of them (2 or 3 repeated classes, or uniform as the paper).

SEEDS = range(8)


def _fcn3(k: int, seed: int) -> torch.nn.Module:
    return gl.models.create("mlp", num_classes=k, depth=3, width=300, seed=seed)


def _scores(model: torch.nn.Module, n: int, k: int, seed: int,
            classes: int | None) -> tuple[int, float, float]:
    x = photo_batch(n, seed=100 + seed)
    y = random_labels(n, k, seed=200 + seed, classes=classes)
    pred = gl.recover_labels(observe(model, x, y), strategy="ilrg")
    s = gl.metrics.label_scores(pred, y, num_classes=k)
    return len(pred), float(s["label_count_acc"]), float(s["label_existence_acc"])


@pytest.mark.parametrize(
    ("name", "k", "classes"),
    [("lenet5", 10, 2), ("lenet5", 10, 3), ("lenet5", 100, None), ("fcn3", 10, 2),
     ("fcn3", 10, None), ("mlp", 10, 3), ("lenet", 100, None)],
)
def test_untrained_models_at_batch_24_reach_the_published_accuracy(
    name: str, k: int, classes: int | None
) -> None:
    rows = []
    for seed in SEEDS:
        if name == "fcn3":
            model = _fcn3(k, seed)
        elif name == "mlp":
            model = gl.models.create("mlp", num_classes=k, depth=2, width=256, seed=seed)
        else:
            model = gl.models.create(name, num_classes=k, seed=seed)
        rows.append(_scores(model, 24, k, seed, classes))
    assert all(r[0] == 24 for r in rows)
    assert sum(r[1] for r in rows) / len(rows) >= 0.99
    assert all(r[2] == 1.0 for r in rows)


def test_dlg_sigmoid_lenet_with_ten_classes_keeps_its_floor() -> None:
    # DLG's LeNet (sigmoid, uniform(-0.5, 0.5)) is confident even untrained, which breaks
    # iLRG's class-wise approximations (see the module docstring): a regression floor for
    # the known gap (20-seed mean ~0.96, below the published 0.99 of the paper's models).
    accs = [_scores(gl.models.create("lenet", num_classes=10, seed=s), 24, 10, s, 2)[1]
            for s in range(12)]
    assert sum(accs) / len(accs) >= 0.9


@pytest.mark.parametrize("name", ["lenet5", "fcn3"])
def test_batch_128_with_every_class_present(name: str) -> None:
    # 10 classes, uniform labels, B = 128: every class ~13 times, dL/db ~ 0 for most classes
    # and no class-wise embedding passes kappa_max. Before the relative-trust fallback the
    # refinement was a no-op here (seed 6: 0.6 for lenet5; seeds 6, 7: 0.8, 0.4 for FCN-3).
    rows = []
    for seed in range(12):
        model = _fcn3(10, seed) if name == "fcn3" else gl.models.create(name, seed=seed)
        rows.append(_scores(model, 128, 10, seed, None))
    assert all(r[0] == 128 for r in rows)
    assert sum(r[1] for r in rows) / len(rows) >= 0.99
    assert all(r[2] == 1.0 for r in rows)


@pytest.mark.parametrize("name", ["lenet", "lenet5", "mlp"])
def test_batch_128_is_reported_for_every_model(name: str) -> None:
    for seed in range(3):
        model = gl.models.create(name, num_classes=10, seed=seed)
        n, count_acc, exist_acc = _scores(model, 128, 10, seed, 3)
        assert n == 128
        assert 0.0 <= count_acc <= 1.0 and exist_acc >= 0.9


@pytest.mark.parametrize("defense", [{"name": "prune", "ratio": 0.99},
                                     {"name": "prune", "ratio": 0.9}])
def test_an_altered_bias_gradient_is_refused_not_read(defense: dict) -> None:
    """A pruned update's bias gradient no longer sums to zero: a clear refusal, never NaN
    counts (a raw LinAlgError before) or labels made up from the wreckage."""
    for seed in range(3):
        torch.manual_seed(seed)
        model = gl.models.create("lenet", in_shape=(1, 32, 32))
        x, y = gl.data.load("digits", size=32, n=4, seed=seed)
        obs, _ = gl.simulate(model, x, y, defense=defense)
        with pytest.raises(ThreatModelError, match="sums to .* of its l1 norm"):
            gl.recover_labels(obs, strategy="ilrg")
        clean, _ = gl.simulate(model, x, y)  # control: the same batch undefended is read
        assert gl.recover_labels(clean, strategy="ilrg").tolist() == sorted(y.tolist())
