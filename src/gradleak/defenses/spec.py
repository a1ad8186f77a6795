"""Defense specifications: build a defense from a name, dict or description; parse descriptions.

An :class:`~gradleak.Observation` records the defense the client declares as the string
:meth:`Defense.describe` returns, e.g. ``"prune(ratio=0.9)"``. :func:`parse` reads such a
string back without evaluating code (only literals are accepted), so a description taken
from an untrusted saved observation is safe to parse.
"""

from __future__ import annotations

import ast
from typing import Any

from gradleak.defenses.base import Defense, create
from gradleak.errors import ConfigError

#: what callers may pass as a defense
DefenseSpec = Defense | str | dict[str, Any] | None


def parse(description: str) -> tuple[str, dict[str, Any]]:
    """``"name(k=v, ...)"`` (or a bare ``"name"``) -> ``(name, {k: v})``; literals only.

    Example:
        >>> parse("quantize(bits=4, rounding='nearest')")
        ('quantize', {'bits': 4, 'rounding': 'nearest'})
    """
    bad = ConfigError(
        f"cannot read the defense description {description!r}; expected name(key=value, ...)"
    )
    try:
        node = ast.parse(description.strip(), mode="eval").body
    except SyntaxError:
        raise bad from None
    if isinstance(node, ast.Name):
        return node.id, {}
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
        raise bad
    settings: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise bad
        try:
            settings[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, SyntaxError):
            raise bad from None
    return node.func.id, settings


def resolve(spec: DefenseSpec) -> Defense | None:
    """A :class:`Defense` from a name, a description, ``{"name": ..., **settings}`` or itself.

    Example:
        >>> resolve({"name": "clip", "max_norm": 2.0}).describe()
        'clip(max_norm=2.0)'
    """
    if spec is None or isinstance(spec, Defense):
        return spec
    if isinstance(spec, str):
        name, settings = parse(spec)
        return create(name, **settings)
    if isinstance(spec, dict):
        settings = dict(spec)
        name = settings.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError("a defense dict needs a 'name' key, e.g. {'name': 'clip', ...}")
        return create(name, **settings)
    raise ConfigError(
        f"defense must be a name, a dict or a Defense, not {type(spec).__name__}"
    )
