"""Frozen config dataclasses and the one rule for overriding their fields.

The override rule (used by ``gradleak.reconstruct(**overrides)``, ``gradleak.attacks.create``,
:class:`gradleak.run.RunSpec` and the CLI's ``--set``):

* ``name=value`` replaces the field ``name`` entirely. A mapping replaces the whole mapping:
  ``priors={}`` removes every prior, ``priors={"tv": 0.1}`` keeps only TV.
* ``"a.b"=value`` (a dotted key) changes ONE entry of the field ``a``: for a mapping field,
  entry ``b`` is set (created if absent) and the other entries stay; deeper keys
  (``priors.tv.weight``) walk into nested mappings; for a nested config dataclass, its
  field ``b`` is overridden by the same rule.
* Whole replacements are applied before dotted keys, so ``priors={}`` together with
  ``priors.tv=0.1`` gives ``{"tv": 0.1}``.
* An unknown field, or a dotted key into something that is neither a mapping nor a config,
  is a :class:`~gradleak.errors.ConfigError` that names the valid settings.

Example:
    >>> import gradleak as gl
    >>> att = gl.attacks.create("ig", **{"priors.tv.weight": 0.05})
    >>> dict(att.config.priors)
    {'tv': {'weight': 0.05, 'space': 'input'}}
    >>> dict(gl.attacks.create("ig", priors={}).config.priors)
    {}

On the command line the same reads ``--set priors.tv.weight=0.05`` and ``--set 'priors={}'``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from gradleak.errors import ConfigError

C = TypeVar("C")


def _is_config(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _set_entry(base: Any, path: list[str], value: Any, where: str, owner: str) -> Any:
    """A copy of ``base`` (a mapping or config) with the entry at ``path`` set to ``value``."""
    head, rest = path[0], path[1:]
    if _is_config(base):
        if not rest:
            return with_overrides(base, owner, **{head: value})
        names = {f.name for f in dataclasses.fields(base)}
        if head not in names:
            raise ConfigError(f"{owner}: {where} has no setting {head!r}; valid settings: "
                              f"{', '.join(sorted(names))}")
        child = _set_entry(getattr(base, head), rest, value, f"{where}.{head}", owner)
        return dataclasses.replace(base, **{head: child})
    if isinstance(base, Mapping):
        out = dict(base)
        if not rest:
            out[head] = value
            return out
        out[head] = _set_entry(out.get(head, {}), rest, value, f"{where}.{head}", owner)
        return out
    raise ConfigError(
        f"{owner}: {where} is {base!r}, not a mapping, so {where}.{'.'.join(path)} cannot be "
        f"set; give the whole value instead ({where}=...)"
    )


def with_overrides(config: C, owner: str, **overrides: Any) -> C:
    """Returns a copy of the frozen dataclass ``config`` with ``overrides`` applied.

    See the module docstring for the rule: plain names replace a field, dotted names
    (``"priors.tv.weight"``) change one entry of a mapping (or nested config) field.

    Args:
        config: a dataclass instance (a recipe's defaults).
        owner: the name used in the error message (e.g. ``"attack 'ig'"``).
        **overrides: field names (or dotted paths) and new values.

    Raises:
        ConfigError: a field is unknown (the message lists the valid ones), or a dotted key
            walks into a value that is not a mapping.
    """
    if not _is_config(config):
        raise TypeError("config must be a dataclass instance")
    names = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    unknown = sorted({k.split(".")[0] for k in overrides} - names)
    if unknown:
        raise ConfigError(
            f"{owner} has no setting {', '.join(map(repr, unknown))}; "
            f"valid settings: {', '.join(sorted(names))}"
        )
    whole = {k: v for k, v in overrides.items() if "." not in k}
    out = dataclasses.replace(config, **whole)  # type: ignore[type-var]
    for key, value in overrides.items():
        if "." not in key:
            continue
        parts = key.split(".")
        if any(not p for p in parts):
            raise ConfigError(f"{owner}: bad setting name {key!r}")
        head = parts[0]
        child = _set_entry(getattr(out, head), parts[1:], value, head, owner)
        out = dataclasses.replace(out, **{head: child})  # type: ignore[type-var]
    return out


def flatten_overrides(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"priors": {"tv": 0.1}}`` -> ``{"priors.tv": 0.1}`` (an empty mapping stays whole).

    Turns nested override mappings (e.g. read from YAML) into the dotted keys of the
    override rule, so that each leaf changes one entry instead of replacing a mapping.
    """
    out: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_overrides(value, f"{name}."))
        else:
            out[name] = value
    return out


def config_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            v = config_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out
