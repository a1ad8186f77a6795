"""Threat: planted symbolic links make gradleak overwrite or read files outside a folder.

Reproduction from issue 14: ``ln -s ~/victim DIR/index.html; gradleak report DIR`` replaced
``~/victim``. Every writer goes through :mod:`gradleak.safeio`, which refuses links and
writes atomically (temporary file in the folder + rename).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import gradleak as gl
from gradleak import safeio
from gradleak.cli import app
from gradleak.errors import DataError
from gradleak.report import rerender, write_run
from tests.report.factory import make_run

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt",
                                reason="POSIX symlinks")

VICTIM_TEXT = "precious data\n"


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "home" / "victim"
    victim.parent.mkdir()
    victim.write_text(VICTIM_TEXT)
    return victim


def _run_dir(tmp_path: Path) -> Path:
    rec, truth = make_run(n=2, snapshots=3)
    write_run(tmp_path / "run", rec, truth)
    return tmp_path / "run"


@pytest.mark.parametrize("name", ["index.html", "progress.gif"])
def test_report_cli_does_not_follow_a_planted_link(tmp_path: Path, name: str) -> None:
    run = _run_dir(tmp_path)
    victim = _victim(tmp_path)
    (run / name).unlink()
    (run / name).symlink_to(victim)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.output and "Traceback" not in result.output
    assert victim.read_text() == VICTIM_TEXT
    assert (run / name).is_symlink()  # refused, not silently replaced


def test_write_run_refuses_links_to_files_and_folders(tmp_path: Path) -> None:
    rec, truth = make_run(n=2, snapshots=3)
    victim = _victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").symlink_to(victim)
    with pytest.raises(DataError, match="symbolic link"):
        write_run(out, rec, truth)
    assert victim.read_text() == VICTIM_TEXT
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "linked").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(DataError, match="symbolic link"):
        write_run(tmp_path / "linked", rec, truth)
    assert not any(elsewhere.iterdir())


def test_rerender_refuses_a_linked_run_folder(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    (tmp_path / "alias").symlink_to(run, target_is_directory=True)
    with pytest.raises(DataError, match="symbolic link"):
        rerender(tmp_path / "alias")


def test_load_run_does_not_read_through_links(tmp_path: Path) -> None:
    """A planted metrics.json -> private file must not end up in a shared index.html."""
    run = _run_dir(tmp_path)
    secret = tmp_path / "secret.json"
    secret.write_text('{"api_key": "hunter2"}')
    (run / "metrics.json").unlink()
    (run / "metrics.json").symlink_to(secret)
    with pytest.raises(DataError, match="symbolic link"):
        gl.report.load_run(run)


def test_observation_save_refuses_links(tmp_path: Path) -> None:
    model = gl.models.create("lenet", in_shape=(1, 8, 8), num_classes=3)
    obs, _ = gl.simulate(model, gl.data.load("sample", size=8, n=1)[0][:, :1],
                         gl.data.load("sample", size=8, n=1)[1] % 3)
    victim = _victim(tmp_path)
    out = tmp_path / "obs"
    out.mkdir()
    (out / "meta.json").symlink_to(victim)
    with pytest.raises(DataError, match="symbolic link"):
        obs.save(out)
    assert victim.read_text() == VICTIM_TEXT


def test_writes_are_atomic_and_stay_inside_root(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    safeio.write_text(target, "old")
    safeio.write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no temp file left
    with pytest.raises(DataError, match="outside"):
        safeio.write_text(tmp_path / "sub" / ".." / ".." / "escape.txt", "x", root=tmp_path)
    (tmp_path / "sub").symlink_to(tmp_path.parent, target_is_directory=True)
    with pytest.raises(DataError, match="symbolic link"):
        safeio.write_text(tmp_path / "sub" / "deeper" / "x.txt", "x", root=tmp_path)


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "grid.png"
    safeio.write_text(target, "old")

    def boom(_f: object) -> None:
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        safeio.write_with(target, boom)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


def test_report_refuses_before_redrawing_anything(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    victim = _victim(tmp_path)
    (run / "index.html").unlink()
    (run / "index.html").symlink_to(victim)
    grid = (run / "grid.png").stat()
    with pytest.raises(DataError, match="symbolic link"):
        rerender(run)
    assert (run / "grid.png").stat().st_mtime_ns == grid.st_mtime_ns


def test_report_of_a_missing_folder_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        rerender(tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("writer", ["artifact", "json", "image"])
def test_the_artifact_writer_refuses_links(tmp_path: Path, writer: str) -> None:
    """persistence.write_artifact (reports, demo, experiments, priors) goes through safeio."""
    from PIL import Image

    from gradleak.persistence import write_artifact, write_json
    from gradleak.report.files import save_image

    victim = _victim(tmp_path)
    link = tmp_path / "out" / "file"
    link.parent.mkdir()
    link.symlink_to(victim)
    write = {"artifact": lambda: write_artifact(link, "x"),
             "json": lambda: write_json(link, {"a": 1}),
             "image": lambda: save_image(link, Image.new("RGB", (2, 2)))}[writer]
    with pytest.raises(DataError, match="symbolic link"):
        write()
    assert victim.read_text() == VICTIM_TEXT
    assert [p.name for p in link.parent.iterdir()] == ["file"]  # no temporary file left
