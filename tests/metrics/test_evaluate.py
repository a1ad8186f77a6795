"""``gl.evaluate`` on hand-built Reconstructions with known answers."""

from __future__ import annotations

import json
import math

import pytest
import torch

import gradleak as gl
from gradleak.metrics import MetricError, Scores, evaluate, psnr, ssim


def _truth(n: int = 4, seed: int = 0) -> gl.GroundTruth:
    g = torch.Generator().manual_seed(seed)
    return gl.GroundTruth(torch.rand(n, 3, 16, 16, generator=g), torch.tensor([1, 4, 4, 2][:n]))


def _rec(images: torch.Tensor, labels: torch.Tensor | None, **config) -> gl.Reconstruction:
    return gl.Reconstruction(images=images, labels=labels, attack="test", config=dict(config))


def test_public_entry_point() -> None:
    assert gl.evaluate is evaluate


def test_permuted_noisy_reconstruction() -> None:
    truth = _truth()
    perm = torch.tensor([2, 0, 3, 1])
    g = torch.Generator().manual_seed(5)
    images = (truth.images[perm] + 0.05 * torch.randn(4, 3, 16, 16, generator=g)).clamp(0, 1)
    labels = truth.labels[perm].clone()
    labels[0] = 7  # one wrong label (true 4)
    s = evaluate(_rec(images, labels), truth, num_classes=10)

    assert isinstance(s, Scores)
    assert s["assignment"] == perm.tolist()
    expected_psnr = psnr(images.double(), truth.images[perm].double())
    assert s["psnr"] == pytest.approx(float(expected_psnr.mean()))
    assert s.ssim == pytest.approx(float(ssim(images.double(), truth.images[perm].double()).mean()))
    assert 20 < s["psnr"] < 35 and 0 < s["ssim"] < 1
    assert s["label_acc"] == 0.75
    # true counts: 1->1, 2->1, 4->2 ; recovered: 1->1, 2->1, 4->1, 7->1
    assert s["label_count_error"] == 2
    assert s["label_existence_acc"] == pytest.approx(0.9)
    assert s["label_count_acc"] == pytest.approx(0.8)
    assert s["label_instance_recall"] == pytest.approx(0.75)
    assert s["lpips"] is None or isinstance(s["lpips"], float)
    assert s["num_images"] == 4 and s["attack"] == "test"

    first = s["per_image"][0]
    assert first["index"] == 2 and first["label"] == 7 and first["true_label"] == 4
    assert first["label_correct"] is False
    assert first["psnr"] == pytest.approx(float(expected_psnr[0]))
    assert [p["index"] for p in s["per_image"]] == perm.tolist()


def test_perfect_reconstruction_and_json_export() -> None:
    truth = _truth()
    s = evaluate(_rec(truth.images.flip(0), truth.labels.flip(0)), truth)
    assert math.isinf(s["psnr"]) and s["ssim"] == pytest.approx(1.0) and s["mse"] == 0.0
    assert s["label_acc"] == 1.0 and s["label_count_error"] == 0
    d = s.to_dict()
    assert set(d) == set(s.keys()) and isinstance(d["per_image"], list)
    json.dumps(d)  # Python's json accepts inf
    strict = json.loads(s.to_json())
    assert strict["psnr"] == "inf" and strict["ssim"] == pytest.approx(1.0)


def test_without_labels_label_metrics_are_none() -> None:
    truth = _truth()
    s = evaluate(_rec(truth.images * 0.5, None), truth)
    for key in (
        "label_acc",
        "label_existence_acc",
        "label_count_acc",
        "label_count_error",
        "label_instance_recall",
    ):
        assert s[key] is None
    assert s["per_image"][0]["label"] is None and s["per_image"][0]["label_correct"] is None


def test_single_image_and_no_matching() -> None:
    truth = _truth(n=1)
    s = evaluate(_rec(truth.images.clamp(0.1, 0.9), truth.labels), truth)
    assert s["assignment"] == [0] and s["label_acc"] == 1.0
    t4 = _truth()
    unmatched = evaluate(_rec(t4.images.flip(0), t4.labels), t4, match_images=False)
    assert unmatched["assignment"] == [0, 1, 2, 3] and unmatched["psnr"] < 20


def test_num_classes_from_config() -> None:
    truth = _truth()
    s = evaluate(_rec(truth.images, torch.tensor([1, 4, 4, 3]), num_classes=100), truth)
    # classes 2 and 3 wrong out of 100
    assert s["label_existence_acc"] == pytest.approx(0.98)


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (torch.rand(3, 3, 16, 16), None, "differ in shape"),
        (torch.rand(4, 3, 8, 8), None, "differ in shape"),
        (torch.rand(4, 3, 16, 16) * 255, None, r"must lie in \[0, 1\]"),
        (torch.rand(4, 3, 16, 16) - 0.5, None, r"must lie in \[0, 1\]"),
        (torch.full((4, 3, 16, 16), float("nan")), None, "NaN"),
        (torch.rand(4, 3, 16, 16), torch.tensor([1, 2]), "2 labels for 4 images"),
        (torch.rand(4, 3, 16, 16), torch.tensor([1.0, 2.0, 3.0, 4.0]), "integer"),
    ],
)
def test_mismatches_are_clear_errors(images, labels, message: str) -> None:
    with pytest.raises(MetricError, match=message):
        evaluate(_rec(images, labels), _truth())


def test_scores_are_read_only_mapping() -> None:
    truth = _truth()
    s = evaluate(_rec(truth.images, truth.labels), truth)
    with pytest.raises(AttributeError, match="read-only"):
        s.psnr = 3.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        s["psnr"] = 3.0  # type: ignore[index]
    with pytest.raises(AttributeError, match="no metric"):
        _ = s.fid
    assert "psnr=" in repr(s)


def test_partial_result_scores_what_was_found_and_counts_the_rest() -> None:
    truth = _truth()
    found = truth.images[[3, 1]]  # two of four, out of order
    rec = gl.Reconstruction(found, torch.tensor([2, 4]), attack="test", config={}, expected=4)
    assert rec.partial and rec.missing == 2
    s = evaluate(rec, truth, num_classes=10)
    assert s["partial"] and s["num_images"] == 4 and s["num_recovered"] == 2
    assert s["num_missed"] == 2 and s["missed"] == [0, 2]
    assert s["assignment"] == [3, 1] and s["psnr"] == math.inf and s["label_acc"] == 1.0
    assert s["label_count_error"] is None  # multiset metrics need the whole batch
    missed = [p for p in s["per_image"] if p["missed"]]
    assert [p["index"] for p in missed] == [0, 2] and all(p["psnr"] is None for p in missed)
    json.loads(s.to_json())


def test_empty_partial_result_and_undeclared_shortfall() -> None:
    truth = _truth()
    empty = gl.Reconstruction(torch.zeros(0, 3, 16, 16), None, attack="t", config={},
                              expected=4)
    s = evaluate(empty, truth)
    assert s["num_recovered"] == 0 and s["num_missed"] == 4 and s["psnr"] is None
    # fewer images without saying so is a clear error, not a silent score
    with pytest.raises(MetricError, match="partial result must say so"):
        evaluate(_rec(truth.images[:2], None), truth)


def test_reconstruction_refuses_more_images_than_expected() -> None:
    with pytest.raises(gl.errors.DataError, match="cannot expect fewer"):
        gl.Reconstruction(torch.rand(3, 1, 4, 4), None, attack="t", config={}, expected=2)
