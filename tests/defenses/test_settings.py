"""Every defense states its ranges; bad settings are refused; descriptions round-trip."""

from __future__ import annotations

import math

import pytest

import gradleak as gl
from gradleak.defenses import parse, resolve
from gradleak.errors import ConfigError

BAD = [
    ("clip", {"max_norm": math.nan}),
    ("clip", {"max_norm": 0.0}),
    ("clip", {"max_norm": math.inf}),
    ("noise", {"sigma": -0.1}),
    ("noise", {"sigma": math.nan}),
    ("laplace", {"scale": math.nan}),
    ("prune", {"ratio": 1.0}),
    ("prune", {"ratio": math.nan}),
    ("sparsify", {"ratio": -0.1}),
    ("quantize", {"bits": 0}),
    ("quantize", {"bits": 2.5}),
    ("quantize", {"bits": True}),
    ("quantize", {"rounding": "up"}),
    ("dpsgd", {"noise_multiplier": math.nan}),
    ("dpsgd", {"noise_multiplier": 1.0, "sample_rate": 0.0}),
    ("dpsgd", {"noise_multiplier": 1.0, "delta": 1.0}),
    ("dpsgd", {"noise_multiplier": 1.0, "max_grad_norm": -1.0}),
    ("dpsgd", {"noise_multiplier": 1.0, "target_epsilon": 8.0}),
    ("dpsgd", {}),
    ("dpsgd", {"noise_multiplier": 1.0, "accountant": "moments"}),
    ("soteria", {"ratio": 1.5}),
    ("mixup", {"alpha": 0.0}),
    ("instahide", {"k": 0}),
    ("precode", {"size": 0}),
    ("precode", {"beta": math.nan}),
    ("secagg", {"clients": 0}),
    ("secagg", {"reduce": "max"}),
    ("secagg", {"client_defense": {"name": "secagg"}}),
    ("noise", {"sigmaa": 0.1}),
]


@pytest.mark.parametrize(("name", "settings"), BAD)
def test_bad_settings_are_refused(name: str, settings: dict) -> None:
    with pytest.raises(ConfigError, match=name):
        gl.defenses.create(name, **settings)


def test_nan_clip_from_a_spec_string_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_norm"):
        resolve("clip(max_norm=nan)")  # not a literal: refused like garbage
    with pytest.raises(ConfigError, match="max_norm"):
        resolve({"name": "clip", "max_norm": float("nan")})


def test_every_defense_declares_its_ranges_and_round_trips() -> None:
    for name in gl.defenses.available():
        settings = {"noise_multiplier": 1.0} if name == "dpsgd" else {}
        d = gl.defenses.create(name, **settings)
        again = resolve(d.describe())
        assert again == d, name
        assert parse(d.describe())[0] == name
        for key, text in gl.defenses.parameters(name).items():
            assert hasattr(d, key) and text


def test_parse_refuses_code() -> None:
    for text in ("__import__('os').system('x')", "clip(max_norm=f())", "clip(1.0)", "a.b()"):
        with pytest.raises(ConfigError):
            parse(text)
