"""``defense-curves``: settings checks and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest

from gradleak.errors import ConfigError
from gradleak.experiments import available, run_experiment
from gradleak.experiments.defense_curves import resolve_settings


def test_registered_and_settings_checked() -> None:
    assert "defense-curves" in available()
    with pytest.raises(ConfigError, match="no setting"):
        resolve_settings(True, {"nope": 1})
    with pytest.raises(ConfigError, match="axes"):
        resolve_settings(True, {"axes": ["volume"]})
    s = resolve_settings(False, {"attacks": "ig", "seeds": [3, 4]})
    assert s.attacks == ("ig",) and s.seeds == (3, 4)


def test_tiny_run_writes_page_table_and_plots(tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = run_experiment(
        "defense-curves", tmp_path, quick=True, axes=["prune"], attacks=["ig", "ig-prior"],
        attack_recipes={"ig-prior": "ig"},
        attack_overrides={"ig": {"iterations": 2}, "ig-prior": {"iterations": 2, "lr": 0.05}},
        utility=False, grids=False, progress=False)
    assert page.is_file() and "Defense curves" in page.read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    points = {(r["point"], r["attack"]) for r in results["summary"]}
    assert points == {(p, a) for p in ("no defense", "prune 0.9") for a in ("ig", "ig-prior")}
    assert (tmp_path / "prune_psnr.png").is_file()


def test_attack_points_setting_limits_attacks_to_axes_or_points() -> None:
    from gradleak.experiments.defense_curves.points import points, runs_on

    s = resolve_settings(True, {"attacks": "idlg,ig,ig-adaptive",
                                "attack_points": {"idlg": "none,dp eps 8",
                                                  "ig-adaptive": ["prune", "sign"]}})
    assert s.attack_points["idlg"] == ("none", "dp eps 8")
    pts = {p.label: p for p in points(s, 0.02, 10)}
    ran = {label: [a for a in s.attacks if runs_on(s, a, p)] for label, p in pts.items()}
    assert ran["no defense"] == ["idlg", "ig"] and ran["dp eps 8"] == ["idlg", "ig"]
    assert ran["prune 0.9"] == ["ig", "ig-adaptive"] and ran["sign"] == ["ig", "ig-adaptive"]
    assert ran["quantize 2"] == ["ig"] and ran["noise 0.01"] == ["ig"]
    with pytest.raises(ConfigError, match="attack_points"):
        resolve_settings(True, {"attack_points": {"ig": ["volume 3"]}})
    with pytest.raises(ConfigError, match="attack_points"):
        resolve_settings(True, {"attack_points": "ig"})
    # the full defaults: ig everywhere, ig-adaptive (ig + adaptive=True) on the compressions
    full = resolve_settings(False, {})
    assert full.attack_recipes["ig-adaptive"] == "ig"
    assert full.attack_overrides["ig-adaptive"] == {**full.attack_overrides["ig"],
                                                   "adaptive": True}
    assert "ig" not in full.attack_points


def test_adaptive_table_pairs_seeds_and_margins() -> None:
    from gradleak.experiments.defense_curves.tables import adaptive_pairs, adaptive_table

    s = resolve_settings(False, {"attacks": "idlg,ig,ig-adaptive"})
    assert adaptive_pairs(s) == [("ig", "ig-adaptive")]
    rows = [{"point": pt, "attack": a, "seed": seed, "psnr": v}
            for pt, a, seed, v in [("sign", "ig", 0, 9.0), ("sign", "ig-adaptive", 0, 15.5),
                                   ("sign", "ig", 1, 10.0), ("sign", "ig-adaptive", 1, 9.0),
                                   ("sign", "ig", 2, 8.0),  # no adaptive run: not compared
                                   ("prune 0.5", "ig", 0, 20.0), ("no defense", "idlg", 0, 40.0)]]
    table = adaptive_table(s, rows)
    assert len(table) == 1
    (row,) = table
    assert row["defense"] == "sign" and row["seeds"] == "0 / 1"
    assert row["plain PSNR dB per seed"] == "9.00 / 10.00"
    assert row["margin dB per seed"] == "6.50 / -1.00"
    assert row["mean margin dB"] == pytest.approx(2.75)
    assert row["adaptive better on"] == "1/2 seeds"


def _tiny(tmp_path, adaptive_iterations=2, axes=("prune", "sign"), **extra):  # type: ignore[no-untyped-def]
    return run_experiment(
        "defense-curves", tmp_path, quick=True, axes=list(axes), seeds=[0, 1],
        attacks=["ig", "ig-adaptive"], attack_points={"ig-adaptive": ["prune", "sign"]},
        attack_overrides={"ig": {"iterations": 2},
                          "ig-adaptive": {"iterations": adaptive_iterations, "adaptive": True}},
        grids=False, progress=False, **extra)


def test_quick_run_has_adaptive_table_and_accuracy_beside_leakage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = _tiny(tmp_path, utility_epochs=0.05)
    html = page.read_text()
    assert "Adaptive vs plain attack on the same seeds" in html
    md = (tmp_path / "tables.md").read_text()
    adaptive = md.split("## Adaptive vs plain")[1]
    for point in ("prune 0.9", "sign"):
        assert f"| {point} | ig | ig-adaptive | 0 / 1 |" in adaptive
    results = json.loads((tmp_path / "results.json").read_text())
    pts = {p["point"]: p for p in results["points"]}
    assert pts["no defense"]["attacks"] == ["ig"]
    assert pts["sign"]["attacks"] == ["ig", "ig-adaptive"]
    assert all(0.0 <= pts[k]["model_acc"] <= 1.0 for k in ("no defense", "prune 0.9", "sign"))
    leakage = md.split("## DP-SGD")[0]
    assert "model acc" in leakage and "ig-adaptive PSNR dB (per seed)" in leakage
    assert (tmp_path / "sign_model_acc.png").is_file()


def test_rerun_reuses_cached_results_and_refuses_a_tampered_cache(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gradleak.errors import DataError

    _tiny(tmp_path, axes=["sign"], utility=False)
    first = json.loads((tmp_path / "results.json").read_text())
    assert first["cached_results"] == 0
    cache = tmp_path / "cache.jsonl"
    lines = cache.read_text().splitlines()
    assert len(lines) == len(first["rows"]) == 2 * 2 + 2  # ig: 2 points, adaptive: 1; 2 seeds
    cache.write_text("\n".join(lines) + '\n{"key": "trunc')  # an interrupted last write
    _tiny(tmp_path, axes=["sign"], utility=False)
    second = json.loads((tmp_path / "results.json").read_text())
    assert second["cached_results"] == len(first["rows"])
    assert [r["psnr"] for r in second["rows"]] == [r["psnr"] for r in first["rows"]]
    # a changed setting is a different key: only the changed attack runs again
    _tiny(tmp_path, axes=["sign"], adaptive_iterations=3, utility=False)
    third = json.loads((tmp_path / "results.json").read_text())
    assert third["cached_results"] == 2 * 2
    cache.write_text('{"key": "k", "value": {"psnr": {"x": 1}}}\n' + cache.read_text())
    with pytest.raises(DataError, match="cache"):
        _tiny(tmp_path, axes=["sign"], utility=False)


def test_dp_table_shows_every_seed_against_the_ceiling() -> None:
    from gradleak.experiments.defense_curves.tables import dp_table

    s = resolve_settings(False, {"attacks": "idlg,ig"})
    pts = [{"point": "no defense", "axis": "none", "model_acc": 0.9},
           {"point": "dp eps 8", "axis": "dp", "model_acc": 0.4, "utility_epsilon": 7.99},
           {"point": "prune 0.9", "axis": "prune"}]
    rows = [{"point": pt, "attack": a, "seed": seed, "psnr": v, "epsilon": eps,
             "noise_multiplier": None if eps is None else 0.6}
            for pt, eps in (("no defense", None), ("dp eps 8", 7.99), ("prune 0.9", None))
            for a, vs in (("idlg", (40.0, 11.0)), ("ig", (19.0, 12.5))) for seed, v in
            enumerate(vs)]
    table = dp_table(s, pts, rows)
    assert [(r["defense"], r["attack"]) for r in table] == [
        ("no defense", "idlg"), ("no defense", "ig"), ("dp eps 8", "idlg"), ("dp eps 8", "ig")]
    dp_ig = table[3]
    assert dp_ig["PSNR dB per seed"] == "19.00 / 12.50" and dp_ig["seeds"] == "0 / 1"
    assert dp_ig["every seed < 12 dB"] is False and dp_ig["epsilon (Opacus)"] == 7.99
    assert dp_ig["model acc"] == 0.4 and dp_ig["epsilon of that training (Opacus)"] == 7.99


def test_cache_is_never_read_or_written_through_a_link(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gradleak.errors import DataError
    from gradleak.experiments.defense_curves.cache import ResultCache

    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text('{"key": "k", "value": {"psnr": 1.0}}\n')
    run = tmp_path / "run"
    run.mkdir()
    (run / "cache.jsonl").symlink_to(outside)
    with pytest.raises(DataError, match="link"):
        ResultCache(run)
    (run / "cache.jsonl").unlink()
    (run / "cache.jsonl").symlink_to(tmp_path / "missing.jsonl")  # dangling: nothing to read
    cache = ResultCache(run)
    with pytest.raises(DataError, match="link"):
        cache.put("k", {"psnr": 2.0})
    assert outside.read_text() == '{"key": "k", "value": {"psnr": 1.0}}\n'
    assert not (tmp_path / "missing.jsonl").exists()
