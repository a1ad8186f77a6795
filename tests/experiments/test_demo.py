"""The demo as a registered experiment with registered sections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradleak.experiments import EXPERIMENTS, run_experiment
from gradleak.experiments.demo import (
    DEMO_SECTIONS,
    DemoContext,
    SectionResult,
    demo_section,
    ordered_sections,
    run_demo,
)
from gradleak.experiments.demo.sections.headline import verdict
from gradleak.report.html import Section


def test_sections_are_registered_in_page_order() -> None:
    keys = [s.key for s in ordered_sections()]
    assert keys[:2] == ["mlp_l2_vs_cosine", "mlp_batches"]
    assert {"ig_lenet", "idlg_labels", "bias_ambiguity"} <= set(keys)
    assert "demo" in EXPERIMENTS


@pytest.mark.parametrize(("psnr", "said"), [
    ({"l2": 60.2, "cosine": 59.1}, "no winner"),
    ({"l2": 31.0, "cosine": 58.0}, "no winner"),
    ({"l2": 7.3, "cosine": 7.2}, "neither"),
    ({"l2": 20.3, "cosine": 20.0}, "within a decibel"),
    ({"l2": 14.0, "cosine": 22.0}, "cosine matching recovers the image better"),
])
def test_the_headline_says_only_what_was_measured(psnr: dict[str, float], said: str) -> None:
    assert said in verdict(psnr)


def test_a_new_section_is_one_registration(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DEMO_SECTIONS, "_items", dict(DEMO_SECTIONS._items))

    @demo_section("extra_part", "An extra part", order=99)
    def extra(ctx: DemoContext) -> SectionResult:
        return SectionResult([Section("Extra part", text=f"seed {ctx.seed}")],
                             metrics={"value": 1.5}, rows=[{"part": "extra"}])

    assert ordered_sections()[-1].key == "extra_part"
    res = run_demo(tmp_path, quick=True, sections=[DEMO_SECTIONS.get("extra_part")])
    assert "Extra part" in res.index.read_text()
    assert json.loads((tmp_path / "metrics.json").read_text())["extra_part"]["value"] == 1.5


def test_demo_runs_as_an_experiment_with_chosen_sections(tmp_path: Path) -> None:
    page = run_experiment("demo", tmp_path, quick=True, sections=["bias_ambiguity"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"bias_ambiguity", "wall_time_s"}
    assert metrics["bias_ambiguity"]["batch1_max_abs_error"] < 1e-5
    assert "batch-2 ambiguity" in page.read_text()
    with pytest.raises(Exception, match="no setting 'iterations'"):
        run_experiment("demo", tmp_path, quick=True, iterations=3)


def test_the_batch_section_text_follows_its_numbers() -> None:
    from gradleak.experiments.demo.sections.batches import describe

    table = [{"batch size": 2, "l2 PSNR (dB)": 68.8, "cosine PSNR (dB)": 73.8},
             {"batch size": 4, "l2 PSNR (dB)": 40.4, "cosine PSNR (dB)": 37.6},
             {"batch size": 8, "l2 PSNR (dB)": 25.9, "cosine PSNR (dB)": 17.3}]
    text = describe(table)
    assert "batch 2: both recover the images" in text
    assert "batch 8: l2 is ahead (25.9 / 17.3 dB)" in text
    assert "cosine goes from 73.8 dB at batch 2 to 17.3 dB at batch 8" in text
    low = [{"batch size": 2, "l2 PSNR (dB)": 7.0, "cosine PSNR (dB)": 7.2}]
    assert "neither recovers" in describe(low)
