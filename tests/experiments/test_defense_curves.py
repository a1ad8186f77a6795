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
