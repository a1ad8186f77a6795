"""``gradleak learn train`` / ``info`` through typer's CliRunner (tiny settings)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import gradleak as gl
from gradleak.cli import app

runner = CliRunner()
TINY = ["--model", "lenet", "--aux", "sample", "--size", "8", "--hidden", "16",
        "--hash-dim", "64", "--no-progress"]


def test_train_writes_a_resumable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "inv.safetensors"
    first = runner.invoke(app, ["learn", "train", *TINY, "--epochs", "1", "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "validation PSNR" in first.output and out.is_file()
    again = runner.invoke(app, ["learn", "train", *TINY, "--epochs", "2", "--out", str(out),
                                "--resume"])
    assert again.exit_code == 0, again.output
    assert "resuming" in again.output
    inv = gl.learned.load(out)
    assert inv.training["epochs_done"] == 2 and len(inv.training["history"]) == 2
    info = runner.invoke(app, ["learn", "info", str(out)])
    assert info.exit_code == 0 and "batch size 1" in info.output


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["learn", "train", *TINY, "--defense", "bogus", "--out",
                              str(tmp_path / "x.safetensors")])
    assert bad.exit_code == 2 and "unknown defense" in bad.output
    assert "Traceback" not in bad.output
    missing = runner.invoke(app, ["learn", "info", str(tmp_path / "absent.safetensors")])
    assert missing.exit_code == 2 and "no inverter" in missing.output
