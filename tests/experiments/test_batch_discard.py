"""The ``batch-discard`` experiment: quick mode runs end to end and writes its page."""

import json

import pytest
import torch

import gradleak as gl
from gradleak.errors import ConfigError
from gradleak.experiments import EXPERIMENTS, run_experiment
from gradleak.experiments.batch_discard import (
    GRAY,
    GRAY_MARGIN_DB,
    batch_labels,
    distinct_images,
)


def test_registered() -> None:
    import gradleak.experiments.batch_discard  # noqa: F401

    assert "batch-discard" in EXPERIMENTS.available()


def test_batches_are_distinct_and_labels_follow_the_mode() -> None:
    x = distinct_images(75, 16, seed=0)  # more than the 70 bundled photos
    assert x.shape == (75, 3, 16, 16) and float(x.min()) >= 0 and float(x.max()) <= 1
    flat = x.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(75)).min() > 1e-3
    u = batch_labels(8, "unique", 10, 0)
    assert len(set(u.tolist())) == 8
    r = batch_labels(9, "repeated", 100, 0)
    assert len(set(r.tolist())) == 2
    with pytest.raises(ConfigError):
        batch_labels(11, "unique", 10, 0)


@pytest.mark.slow
def test_quick_run_writes_html_and_results(tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = run_experiment("batch-discard", tmp_path, quick=True, seed=0)
    assert page.name == "index.html" and page.is_file()
    text = page.read_text()
    assert "Ablation" in text and "psnr_vs_batch.png" in text
    for png in ("psnr_vs_batch.png", "label_acc_vs_batch.png", "labels_vs_batch.png"):
        assert (tmp_path / png).is_file()
    results = json.loads((tmp_path / "results.json").read_text())
    attacks = {(r["attack"], r["mode"], r["batch"]) for r in results["attacks"]["rows"]}
    assert ("gradinversion", "repeated", 2) in attacks and ("ig", "unique", 1) in attacks
    assert all(r["psnr"] is not None for r in results["attacks"]["rows"])
    variants = [r["variant"] for r in results["ablation"]]
    assert variants[0].startswith("gradinversion") and any("without bn" in v for v in variants)
    assert results["labels"]["ilrg"]


def test_unknown_setting_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="no setting"):
        gl.experiments.run_experiment("batch-discard", tmp_path, quick=True, bogus=1)


def test_ablation_variants_cover_every_prior_and_ig() -> None:
    from gradleak.experiments.batch_discard import Settings, ablation_runs

    runs = ablation_runs(Settings(gradinversion={"langevin": 0.01}))  # the recipe's defaults
    labels = [label for label, _, _ in runs]
    priors = dict(gl.attacks.ATTACKS.get("gradinversion").Config().priors)
    assert labels[0] == "gradinversion (all priors)" and runs[0][2] == {}
    for name in priors:  # each prior removed once, the others kept at their defaults
        (ov,) = [o for label, _, o in runs if label == f"without {name}"]
        assert set(ov["priors"]) == set(priors) - {name}
    assert ("ig (reference, its own labels)", "ig", {}) in runs
    assert ("gradinversion without Langevin noise", "gradinversion", {"langevin": 0.0}) in runs
    assert not any("lr" in label for label in labels)  # both recipes default to lr 0.1
    no_noise = [label for label, _, _ in ablation_runs(Settings(gradinversion={}))]
    assert "gradinversion without Langevin noise" not in no_noise  # the default has none


def test_ablation_variants_follow_the_experiments_gradinversion_settings() -> None:
    from gradleak.experiments.batch_discard import Settings, ablation_runs

    mine = {"priors": {"tv": 1e-3, "group": 0.1}, "langevin": 0.0}
    runs = ablation_runs(Settings(gradinversion=mine))
    removed = {label: o for label, _, o in runs if label.startswith("without ")}
    assert removed == {"without tv": {"priors": {"group": 0.1}},
                       "without group": {"priors": {"tv": 1e-3}}}
    assert not any("Langevin" in label for label, _, _ in runs)  # already off
    # a different step size for gradinversion brings ig at that step size along
    runs = ablation_runs(Settings(gradinversion={**mine, "lr": 0.03}))
    assert ("ig at gradinversion's lr (0.03)", "ig", {"lr": 0.03}) in runs


def test_ablation_part_alone_averages_seeds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = run_experiment("batch-discard", tmp_path, quick=True, seed=0, parts=["ablation"],
                          ablation_seeds=[0, 1], iterations=2)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["labels"] == {"per_batch": [], "ilrg": []} and results["attacks"]["rows"] == []
    rows = results["ablation"]
    assert [r["variant"] for r in rows][0] == "gradinversion (all priors)"
    assert any(r["variant"].startswith("ig") for r in rows)
    *runs, gray = rows
    assert gray["variant"] == GRAY and gray["seconds"] == 0.0  # a reference, not an attack
    assert 5.0 < gray["psnr"] < 20.0
    for r in rows:
        assert r["seeds"] == [0, 1] and len(r["psnr_per_seed"]) == 2
        assert r["psnr"] == pytest.approx(sum(r["psnr_per_seed"]) / 2, abs=2e-3)
    assert all(r["seconds"] > 0 for r in runs)
    text = page.read_text()
    assert "Headline" in text and "Ablation" in text and "without bn" in text
    assert "mid-gray" in text
    by = {r["variant"]: r["psnr"] for r in rows}
    tuned = [v for k, v in by.items() if k.startswith(("ig at", "ig, calibrated"))]
    assert tuned  # ig as tuned as gradinversion is part of the table
    best = max(by["gradinversion (all priors)"], by["ig (reference, its own labels)"], *tuned)
    assert ("neither reconstructs" in text) == (best < gray["psnr"] + GRAY_MARGIN_DB)
    with pytest.raises(ConfigError, match="unknown parts"):
        run_experiment("batch-discard", tmp_path, quick=True, parts=["bogus"])


def test_ablation_subsets_merge_into_the_full_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Runs split by variant and seed (as ``--jobs`` does) give the one-process table."""
    from gradleak.experiments.batch_discard import ablation_table

    variants = ["gradinversion (all priors)", "ig (reference, its own labels)"]
    common = {"quick": True, "parts": ["ablation"], "iterations": 2,
              "ablation_variants": variants}
    run_experiment("batch-discard", tmp_path / "all", ablation_seeds=[0, 1], **common)
    whole = json.loads((tmp_path / "all" / "results.json").read_text())["ablation"]
    assert [r["variant"] for r in whole] == [*variants, GRAY]
    per_run: dict[str, list[dict[str, object]]] = {}
    for v in reversed(variants):  # finishing order does not matter
        for sd in (1, 0):
            out = tmp_path / f"{len(v)}_{sd}"
            run_experiment("batch-discard", out, ablation_seeds=[sd],
                           **{**common, "ablation_variants": [v]})
            for row in json.loads((out / "results.json").read_text())["ablation"]:
                if row["variant"] != GRAY or v == variants[0]:
                    per_run.setdefault(row["variant"], []).extend(row["per_seed"])
    merged = ablation_table({v: per_run[v] for v in [*variants, GRAY]})
    for a, b in zip(whole, merged, strict=True):
        assert a["variant"] == b["variant"] and a["seeds"] == b["seeds"] == [0, 1]
        assert a["psnr_per_seed"] == b["psnr_per_seed"]
        assert a["delta_psnr_vs_full"] == pytest.approx(b["delta_psnr_vs_full"])
    with pytest.raises(ConfigError, match="no ablation variant"):
        run_experiment("batch-discard", tmp_path / "bad", **{**common,
                                                            "ablation_variants": ["bogus"]})


def test_gradinversion_overrides_are_the_calibrated_ones_unless_replaced() -> None:
    from gradleak.experiments.batch_discard import (
        Settings,
        attack_overrides,
        calibrated_gradinversion,
    )

    s = Settings()
    assert attack_overrides(s, "gradinversion") == calibrated_gradinversion()
    assert attack_overrides(s, "ig") == {}
    s2 = Settings(extra_overrides={"gradinversion": {"compile": False}})
    assert attack_overrides(s2, "gradinversion") == {**calibrated_gradinversion(),
                                                     "compile": False}
    assert attack_overrides(Settings(gradinversion={}), "gradinversion") == {}
    gl.attacks.create("gradinversion", **calibrated_gradinversion())  # valid overrides
    small = Settings(model="convnet_small")
    assert attack_overrides(small, "gradinversion") == calibrated_gradinversion("convnet_small")
    assert calibrated_gradinversion("convnet_small") != calibrated_gradinversion()
    gl.attacks.create("gradinversion", **calibrated_gradinversion("convnet_small"))
    from gradleak.experiments.batch_discard import ablation_runs, calibrated_ig

    tuned = calibrated_ig("convnet_small")
    assert tuned is not None and calibrated_ig("convnet") is None
    gl.attacks.create("ig", **tuned)
    assert [o for _, a, o in ablation_runs(small) if a == "ig"][-1] == tuned


def test_bn_mode_and_model_settings_reach_the_client() -> None:
    from gradleak.experiments.batch_discard import ablation_batch, resolve_settings

    for mode, training in (("train", True), ("eval", False)):
        s = resolve_settings(True, {"bn_mode": mode, "model": "convnet_small"})
        obs, _ = ablation_batch(s, 0)
        assert obs.train_mode is training
        assert type(obs.model).__name__ == "ConvNetSmall"
    with pytest.raises(ConfigError, match="bn_mode"):
        resolve_settings(True, {"bn_mode": "frozen"})
