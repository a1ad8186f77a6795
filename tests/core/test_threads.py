"""The default CPU thread count (gradleak.threads): 1 unless the user or $OMP_NUM_THREADS says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from gradleak.cli import app
from gradleak.errors import ConfigError
from gradleak.threads import resolve_threads, use_threads


def test_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads() == 3
    assert resolve_threads(2) == 2 and resolve_threads(0) == 0


@pytest.mark.parametrize("bad", [-1, True, 1.5, "2"])
def test_bad_requests(bad: object) -> None:
    with pytest.raises(ConfigError, match="threads"):
        resolve_threads(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("env", ["0", "two", "-2"])
def test_bad_environment(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    with pytest.raises(ConfigError, match="OMP_NUM_THREADS"):
        resolve_threads()


def test_use_threads_sets_and_zero_keeps() -> None:
    before = torch.get_num_threads()
    try:
        assert use_threads(1) == 1 == torch.get_num_threads()
        assert use_threads(0) == 1  # 0: leave torch's setting alone
    finally:
        torch.set_num_threads(before)


def test_cli_attack_defaults_to_one_thread(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        result = CliRunner().invoke(app, [
            "attack", "--model", "lenet", "--attack", "ig", "--batch-size", "1",
            "--iterations", "2", "--restarts", "1", "--share-labels", "--no-progress",
            "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
        config = json.loads((tmp_path / "config.json").read_text())
        assert config["run"]["threads"] == 1
    finally:
        torch.set_num_threads(before)
