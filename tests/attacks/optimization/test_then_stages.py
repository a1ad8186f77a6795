"""``then``: further pixel stages after a recipe's own (e.g. an annealed prior)."""

from __future__ import annotations

import pytest
import torch

import gradleak as gl
from gradleak.attacks.base import create
from gradleak.errors import ConfigError


def _obs() -> gl.Observation:
    torch.manual_seed(0)
    model = gl.models.create("lenet", in_shape=(3, 8, 8))
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    obs, _ = gl.simulate(model, x, torch.tensor([3]), share_labels=True)
    return obs


TV = {"tv": {"weight": 0.05, "space": "input"}}
LATER = {"iterations": 4, "lr": 0.01, "priors.tv.weight": 0.005}


def test_then_equals_running_the_stages_one_after_the_other() -> None:
    obs = _obs()
    both = gl.reconstruct(obs, attack="ig", iterations=6, restarts=2, priors=TV,
                          then=[LATER], seed=3, snapshot_every=0, compile=False)
    first = gl.reconstruct(obs, attack="ig", iterations=6, restarts=2, priors=TV, seed=3,
                           snapshot_every=0, compile=False)
    second = create("ig", iterations=4, restarts=2, lr=0.01, compile=False,
                    priors={"tv": {"weight": 0.005, "space": "input"}}, snapshot_every=0)
    after = second.reconstruct_from(obs, first.images)
    torch.testing.assert_close(both.images, after.images, rtol=1e-5, atol=1e-6)
    assert len(both.trace.losses) == 10
    assert [s["name"] for s in both.extras["stages"]] == ["pixels", "then-1"]
    assert [s["iterations"] for s in both.extras["stages"]] == [6, 4]
    assert list(both.config["then"]) == [LATER]
    assert not torch.equal(both.images, first.images)  # the later stage did move


@pytest.mark.parametrize("then, words", [
    ("tv", "list of override mappings"),
    ({"iterations": 3}, "list of override mappings"),
    ([5], "then[0] must be a mapping"),
    ([{"bogus": 1}], "then[0] has no setting 'bogus'"),
    ([{"labels": "joint"}], "cannot change labels"),
    ([{"then": []}], "cannot change then"),
    ([{"iterations": 0}], "iterations must be an integer >= 1"),
])
def test_bad_then_is_a_clear_config_error(then: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        create("ig", then=then)


def test_no_then_keeps_one_stage() -> None:
    rec = gl.reconstruct(_obs(), attack="ig", iterations=3, compile=False)
    assert "stages" not in rec.extras and rec.config["then"] in ([], ())
