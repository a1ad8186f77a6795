"""The one override rule (gradleak.config): the same meaning from Python and from the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import gradleak as gl
from gradleak.cli import app
from gradleak.config import flatten_overrides, with_overrides
from gradleak.errors import ConfigError

IG_TV = {"tv": {"weight": 0.2, "space": "input"}}


@dataclass(frozen=True)
class Inner:
    depth: int = 2


@dataclass(frozen=True)
class Cfg:
    lr: float = 0.1
    priors: dict[str, Any] = field(default_factory=lambda: {"tv": {"weight": 0.2, "p": 1}})
    inner: Inner = field(default_factory=Inner)


def test_dotted_key_changes_one_entry_and_a_mapping_replaces() -> None:
    base = Cfg()
    assert with_overrides(base, "x", **{"priors.tv.weight": 0.5}).priors == {
        "tv": {"weight": 0.5, "p": 1}}
    assert with_overrides(base, "x", **{"priors.bn": 1.0}).priors == {
        "tv": {"weight": 0.2, "p": 1}, "bn": 1.0}
    assert with_overrides(base, "x", priors={"bn": 1.0}).priors == {"bn": 1.0}
    assert with_overrides(base, "x", priors={}).priors == {}
    # whole replacements first, then the dotted keys
    assert with_overrides(base, "x", **{"priors.tv": 3.0}, priors={}).priors == {"tv": 3.0}
    assert with_overrides(base, "x", **{"inner.depth": 5}).inner == Inner(5)
    assert base.priors == {"tv": {"weight": 0.2, "p": 1}}  # the defaults are not mutated


@pytest.mark.parametrize(("overrides", "message"), [
    ({"nope": 1}, "no setting 'nope'"),
    ({"nope.x": 1}, "no setting 'nope'"),
    ({"lr.x": 1}, "not a mapping"),
    ({"priors.tv.weight.x": 1}, "not a mapping"),
    ({"inner.width": 1}, "no setting 'width'"),
    ({"priors..tv": 1}, "bad setting name"),
])
def test_bad_overrides_are_clear_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        with_overrides(Cfg(), "attack 'x'", **overrides)


def test_flatten_overrides_gives_dotted_keys() -> None:
    assert flatten_overrides({"lr": 1, "priors": {"tv": {"weight": 2}}, "x": {}}) == {
        "lr": 1, "priors.tv.weight": 2, "x": {}}


def _cli_attack_config(tmp_path: Path, *sets: str) -> dict[str, Any]:
    out = tmp_path / "run"
    args = ["attack", "--model", "mlp", "--model-opt", "width=8", "--size", "8",
            "--attack", "ig", "--iterations", "1", "--no-progress", "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "config.json").read_text())["attack_config"]


def _python_attack_config(**overrides: Any) -> dict[str, Any]:
    return gl.attacks.create("ig", iterations=1, **overrides).config_dict()


@pytest.mark.parametrize(("cli", "python", "priors"), [
    (["priors.tv.weight=0.05"], {"priors.tv.weight": 0.05}, {"tv": {"weight": 0.05,
                                                                    "space": "input"}}),
    (["priors={}"], {"priors": {}}, {}),
    (["priors={l2: 0.1}"], {"priors": {"l2": 0.1}}, {"l2": 0.1}),
    (["priors.l2=0.1"], {"priors.l2": 0.1}, {**IG_TV, "l2": 0.1}),
])
def test_cli_and_python_overrides_mean_the_same(
    tmp_path: Path, cli: list[str], python: dict[str, Any], priors: dict[str, Any]
) -> None:
    from_cli = _cli_attack_config(tmp_path, *cli)
    from_python = _python_attack_config(**python)
    assert from_cli["priors"] == from_python["priors"] == priors
    assert from_cli == from_python
