"""The command line via typer's CliRunner: list, attack, demo --quick, report, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from gradleak.cli import app, parse_assignments, parse_defense, parse_value
from gradleak.errors import ConfigError
from tests.report.factory import make_run

runner = CliRunner()


def _invoke(*args: str):  # noqa: ANN202
    return runner.invoke(app, list(args))


def _assert_user_error(result, *fragments: str) -> None:  # noqa: ANN001
    text = result.output
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    assert "error" in text.lower()
    for frag in fragments:
        assert frag in text, text
    # one line of message (usage errors from click may add a usage block; ours do not)
    assert isinstance(result.exception, SystemExit)


# ------------------------------------------------------------------------------ parsing
def test_parse_value_types() -> None:
    assert parse_value("3") == 3
    assert parse_value("0.5") == 0.5
    assert parse_value("1e-3") == pytest.approx(1e-3)
    assert parse_value("true") is True
    assert parse_value("{tv: 0.1}") == {"tv": 0.1}
    assert parse_value("adam") == "adam"


def test_parse_assignments_nested_and_errors() -> None:
    assert parse_assignments(["lr=0.1", "priors.tv=0.01", "priors.bn=1"]) == {
        "lr": 0.1, "priors": {"tv": 0.01, "bn": 1}}
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["lr"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["=3"])


def test_parse_defense() -> None:
    assert parse_defense(None) is None
    assert parse_defense("noise:sigma=0.01") == {"name": "noise", "sigma": 0.01}
    assert parse_defense("prune") == {"name": "prune"}


# ------------------------------------------------------------------------------ commands
def test_list_shows_every_kind() -> None:
    result = _invoke("list")
    assert result.exit_code == 0, result.output
    for kind in ("attacks", "models", "priors", "label strategies", "defenses", "datasets",
                 "experiments"):
        assert kind in result.output
    for name in ("lenet", "mlp", "noise"):
        assert name in result.output


def test_list_one_kind() -> None:
    result = _invoke("list", "models")
    assert result.exit_code == 0 and "convnet" in result.output and "defenses" not in result.output


def test_unknown_model_exits_2() -> None:
    _assert_user_error(_invoke("attack", "--model", "no_such_model"), "no_such_model")


def test_unknown_attack_exits_2() -> None:
    _assert_user_error(_invoke("attack", "--attack", "no_such_attack"), "no_such_attack")


def test_bad_set_key_exits_2() -> None:
    _assert_user_error(_invoke("attack", "--set", "no_such_field=1"), "no_such_field")


def test_malformed_set_exits_2() -> None:
    _assert_user_error(_invoke("attack", "--set", "iterations"), "key=value")


def test_bad_defense_exits_2() -> None:
    _assert_user_error(_invoke("attack", "--defense", "no_such_defense:x=1"), "no_such_defense")


def test_missing_data_path_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    _assert_user_error(_invoke("attack", "--data", str(missing), "--iterations", "1"), "nope")


def test_bad_model_option_exits_2() -> None:
    _assert_user_error(
        _invoke("attack", "--model", "convnet", "--model-opt", "no_such_opt=3",
                "--iterations", "1"),
        "no_such_opt",
    )


def test_unknown_experiment_exits_2(tmp_path: Path) -> None:
    _assert_user_error(_invoke("experiment", "no_such_study", "--out", str(tmp_path)),
                       "no_such_study")


def test_report_of_a_non_run_exits_2(tmp_path: Path) -> None:
    _assert_user_error(_invoke("report", str(tmp_path)), "not a gradleak run")


def test_report_rerenders_a_saved_run(tmp_path: Path) -> None:
    from gradleak.report import write_run

    rec, truth = make_run(n=2, snapshots=3)
    write_run(tmp_path, rec, truth, {"psnr": 12.0, "ssim": 0.3, "label_acc": 0.5})
    (tmp_path / "index.html").unlink()
    (tmp_path / "progress.gif").unlink()
    result = _invoke("report", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "index.html").is_file() and (tmp_path / "progress.gif").is_file()


def test_attack_tiny_run_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _invoke(
        "attack", "--model", "lenet", "--attack", "ig", "--batch-size", "1",
        "--iterations", "4", "--restarts", "1", "--share-labels", "--seed", "0",
        "--defense", "noise:sigma=0.001", "--set", "lr=0.1", "--out", str(out),
        "--no-progress", "--threads", "1",
    )
    assert result.exit_code == 0, result.output
    for name in ("index.html", "grid.png", "metrics.json", "config.json", "loss.png"):
        assert (out / name).is_file(), name
    assert "PSNR" in result.output and "SSIM" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["defense"] == {"name": "noise", "sigma": 0.001}
    assert config["attack_config"]["iterations"] == 4
    assert config["attack_config"]["lr"] == 0.1
    metrics = json.loads((out / "metrics.json").read_text())
    assert isinstance(metrics["psnr"], float)


def test_experiment_dispatches_with_settings(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from gradleak.experiments import EXPERIMENTS

    calls = []

    def fake(out: Path, *, quick: bool = False, seed: int = 0, size: int = 1) -> Path:
        calls.append((out, quick, seed, size))
        page = out / "index.html"
        page.write_text("<html></html>")
        return page

    monkeypatch.setitem(EXPERIMENTS._items, "fake-study", fake)
    result = _invoke("experiment", "fake-study", "--out", str(tmp_path / "x"), "--quick",
                     "--set", "size=3")
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path / "x", True, 0, 3)]
    _assert_user_error(
        _invoke("experiment", "fake-study", "--out", str(tmp_path), "--set", "nope=1"), "nope")


def test_demo_quick_writes_all_parts(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = _invoke("demo", "--out", str(out), "--quick", "--no-progress")
    assert result.exit_code == 0, result.output
    index = (out / "index.html").read_text()
    gif = out / "mlp_l2_vs_cosine" / "l2_vs_cosine.gif"
    with Image.open(gif) as im:
        assert im.n_frames >= 2
    for part in ("mlp_l2_vs_cosine/l2/index.html", "mlp_l2_vs_cosine/cosine/index.html",
                 "ig_lenet/index.html", "idlg_labels/attack/index.html", "metrics.json"):
        assert (out / part).is_file(), part
        assert part in index or part == "metrics.json"
    assert "mlp_l2_vs_cosine/l2_vs_cosine.gif" in index
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["mlp_l2_vs_cosine"]) >= {"l2", "cosine"}
    assert len(metrics["idlg_labels"]["per_image"]) == 10
    assert "MLP, l2 matching" in result.output
    # the headline's second half, and readable tables (class names, no True/None)
    assert set(metrics["mlp_batches"]) >= {"batch_2", "batch_4", "batch_8"}
    assert "<td>True</td>" not in index and "<td>None</td>" not in index
    assert "(cat)" in index or "(flower)" in index
