"""``gradleak prior train|show`` through typer's CliRunner (tiny 8x8 priors)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

import gradleak as gl
from gradleak.cli import app

runner = CliRunner()
TINY = ["--size", "8", "--width", "16", "--latent-dim", "4", "--batch-size", "32",
        "--max-images", "64", "--no-progress"]


def _train(out: Path, *extra: str):  # noqa: ANN202
    return runner.invoke(app, ["prior", "train", "--data", "digits", "--kind", "vae",
                               "--out", str(out), *TINY, *extra])


def test_train_writes_prior_samples_and_checkpoint_then_resumes(tmp_path: Path) -> None:
    out = tmp_path / "p.safetensors"
    result = _train(out, "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "p.safetensors.ckpt").is_file()
    grid = tmp_path / "p.samples.png"
    assert grid.is_file() and Image.open(grid).size[0] > 64
    G = gl.generative.load(out)
    assert (G.kind, G.image_size, G.latent_dim) == ("vae", 8, 4)
    assert G.metadata["command"].startswith("gradleak ")
    assert "digits" in G.metadata["data"]

    again = _train(out, "--epochs", "2")  # exists, no --resume: refused
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = _train(out, "--epochs", "2", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert len(gl.generative.load(out).metadata["history"]) == 2


def test_show_draws_samples_and_prints_metadata(tmp_path: Path) -> None:
    png = tmp_path / "grid.png"
    result = runner.invoke(app, ["prior", "show", "digits", "--out", str(png), "--n", "16"])
    assert result.exit_code == 0, result.output
    assert png.is_file() and '"kind"' in result.output


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["prior", "train", "--data", "nosuch", "--out",
                              str(tmp_path / "x.safetensors"), *TINY])
    assert bad.exit_code == 2 and "nosuch" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(app, ["prior", "show", str(tmp_path / "none.safetensors")])
    assert missing.exit_code == 2 and "no prior file" in missing.output
    nockpt = _train(tmp_path / "y.safetensors", "--resume")
    assert nockpt.exit_code == 2 and "no checkpoint" in nockpt.output
