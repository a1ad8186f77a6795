"""Threat: a bad ``--out`` (a file, a symlink, an unwritable place) noticed only after the run.

:func:`gradleak.safeio.check_out_dir` runs first in ``gradleak attack``, the demo and every
experiment, so the user learns about it before any attack work is done.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import gradleak as gl
from gradleak.cli import app
from gradleak.errors import DataError
from gradleak.safeio import check_out_dir


@pytest.fixture()
def no_attack(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the attack ran before --out was checked")

    monkeypatch.setattr(gl, "reconstruct", refuse)
    monkeypatch.setattr(gl, "simulate", refuse)


def _attack(out: Path):  # noqa: ANN202
    return CliRunner().invoke(app, ["attack", "--model", "lenet", "--iterations", "100000",
                                    "--no-progress", "--threads", "1", "--out", str(out)])


def test_out_is_a_file(tmp_path: Path, no_attack: None) -> None:
    target = tmp_path / "report.html"
    target.write_text("keep me")
    result = _attack(target)
    assert result.exit_code == 2 and "not a folder" in result.output, result.output
    assert target.read_text() == "keep me"


def test_out_below_a_file(tmp_path: Path, no_attack: None) -> None:
    (tmp_path / "f").write_text("x")
    result = _attack(tmp_path / "f" / "run")
    assert result.exit_code == 2 and "Not a directory" in result.output, result.output


@pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks")
def test_out_is_a_symlink(tmp_path: Path, no_attack: None) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    result = _attack(tmp_path / "link")
    assert result.exit_code == 2 and "symbolic link" in result.output, result.output


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root may write anywhere")
def test_out_not_writable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(DataError, match="cannot write"):
        check_out_dir(locked)


def test_check_out_dir_creates_and_leaves_nothing(tmp_path: Path) -> None:
    out = check_out_dir(tmp_path / "a" / "b")
    assert out.is_dir() and not any(out.iterdir())


def test_experiment_and_demo_check_first(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        gl.experiments.run_experiment("batch-discard", tmp_path / "file", quick=True)
    from gradleak.experiments.demo import run_demo

    with pytest.raises(DataError, match="not a folder"):
        run_demo(tmp_path / "file", quick=True)
    with pytest.raises(DataError, match="not a folder"):
        gl.run(gl.RunSpec(model="mlp", attack="bias", out=tmp_path / "file"))
