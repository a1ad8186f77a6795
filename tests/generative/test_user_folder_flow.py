"""The whole generative flow from the command line on a user's own folder of images:
train a prior, attack a simulated client with it, open the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from gradleak.cli import app

runner = CliRunner()


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            pixels = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    return root


def test_train_a_prior_on_a_folder_then_attack_with_it(tmp_path: Path) -> None:
    images = _folder(tmp_path / "photos")
    prior = tmp_path / "prior.safetensors"
    res = runner.invoke(app, ["prior", "train", "--data", f"folder:{images}", "--kind", "vae",
                              "--size", "16", "--epochs", "1", "--width", "16",
                              "--latent-dim", "8", "--out", str(prior), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert prior.is_file()
    out = tmp_path / "run"
    res = runner.invoke(app, ["attack", "--data", str(images), "--size", "16", "--model",
                              "lenet", "--attack", "gias", "--batch-size", "2",
                              "--iterations", "3", "--set", f"generative_prior={prior}",
                              "--set", "weight_iterations=2", "--share-labels",
                              "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (out / "index.html").is_file() and (out / "grid.png").is_file()
    config = json.loads((out / "config.json").read_text())
    assert "gias" in json.dumps(config)
    # a prior of the wrong size is refused with a message saying what to do
    res = runner.invoke(app, ["attack", "--data", str(images), "--size", "32", "--attack",
                              "gias", "--set", f"generative_prior={prior}", "--share-labels",
                              "--out", str(tmp_path / "bad"), "--no-progress"])
    assert res.exit_code != 0
    assert "prior" in res.output and "Traceback" not in res.output
