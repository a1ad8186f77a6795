"""Schemas with bounds for the JSON files gradleak reads back (they may come from others).

A saved observation's ``meta.json`` and a run folder's ``trace.json`` are untrusted: a
tampered file could hang an attack (``local_steps = 1e9``), allocate a huge model
(``model_spec`` width 200000), or smuggle a string where a number belongs. Every field is
checked here for its type (``True`` is not an integer, ``"5"`` is not a number, NaN is not a
learning rate), its range and its size, *before* anything is built from it. Failures raise
:class:`~gradleak.errors.DataError` naming the file and the field.

The ceilings that guard resources live in :class:`Limits`; raise them explicitly for a
genuinely large model, e.g. ``Observation.load(path, limits=Limits(max_parameters=10**9))``.

Example:
    >>> from gradleak.schema import Int, check
    >>> check(Int(1, 10), 3, "local_steps")
    3
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gradleak.errors import DataError, GradleakError

__all__ = [
    "AnyJson",
    "Bool",
    "Float",
    "Int",
    "Limits",
    "List",
    "Nullable",
    "Record",
    "Reported",
    "Str",
    "check",
    "observation_meta_schema",
    "run_trace_schema",
]


@dataclass(frozen=True)
class Limits:
    """Resource ceilings applied to untrusted files (raise them explicitly when needed).

    Attributes:
        max_parameters: parameters a model rebuilt from a file's ``model_spec`` may have,
            checked on the ``meta`` device before any memory is allocated (100 M by
            default: ResNet-50 has 25.6 M).
        max_modules: submodules plus parameter tensors such a model may have (ResNet-152
            has about 500 + 470); bounds the time spent building a described model.
        max_local_steps: FedAvg local steps an attack will unroll.
        max_batch_size: batch size (and label count) of an observation or a run.
        max_image_side: height and width of one image.
        max_channels: channels of one image.
        max_classes: number of classes.
        max_file_bytes: size of a tensor file that is read into memory (4 GiB).
    """

    max_parameters: int = 100_000_000
    max_modules: int = 5_000
    max_local_steps: int = 10_000
    max_batch_size: int = 65_536
    max_image_side: int = 4096
    max_channels: int = 64
    max_classes: int = 1_000_000
    max_file_bytes: int = 4 * 2**30


DEFAULT_LIMITS = Limits()
_MAX_NAME = 1000  # characters of a name / description string
_MAX_TENSORS = 100_000  # parameter tensors of one model


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


class Field(ABC):
    """One schema node: ``validate`` returns the checked (and normalised) value."""

    @abstractmethod
    def validate(self, value: Any, where: str) -> Any:
        """Checks ``value`` found at ``where``; raises :class:`DataError` on a mismatch."""

    @staticmethod
    def fail(where: str, expected: str, value: Any) -> DataError:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return DataError(f"field {where!r} must be {expected}, got {shown} ({_kind(value)})")


@dataclass(frozen=True)
class Int(Field):
    """An integer (booleans, floats and numeric strings refused) in ``[lo, hi]``."""

    lo: int
    hi: int

    def validate(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not self.lo <= value <= self.hi:
            raise self.fail(where, f"an integer in [{self.lo}, {self.hi}]", value)
        return int(value)


@dataclass(frozen=True)
class Float(Field):
    """A finite number (ints accepted; booleans, strings, NaN and inf refused).

    ``lo_open`` makes the lower bound exclusive (e.g. a learning rate must be > 0).
    """

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False

    def validate(self, value: Any, where: str) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and value <= self.hi
        ok = ok and (value > self.lo if self.lo_open else value >= self.lo)
        if not ok:
            low = "(" if self.lo_open else "["
            raise self.fail(where, f"a finite number in {low}{self.lo}, {self.hi}]", value)
        return float(value)


@dataclass(frozen=True)
class Bool(Field):
    """``true`` or ``false`` (0/1 and strings refused)."""

    def validate(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, "true or false", value)
        return value


@dataclass(frozen=True)
class Str(Field):
    """A string of at most ``max_len`` characters, optionally one of ``choices``."""

    max_len: int = _MAX_NAME
    choices: tuple[str, ...] = ()

    def validate(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or len(value) > self.max_len:
            raise self.fail(where, f"a string of at most {self.max_len} characters", value)
        if self.choices and value not in self.choices:
            raise self.fail(where, f"one of {list(self.choices)}", value)
        return value


@dataclass(frozen=True)
class Nullable(Field):
    """``null`` or the ``inner`` field."""

    inner: Field

    def validate(self, value: Any, where: str) -> Any:
        return None if value is None else self.inner.validate(value, where)


@dataclass(frozen=True)
class List(Field):
    """A list of ``inner`` items with ``min_len <= len <= max_len`` (returned as a list)."""

    inner: Field
    max_len: int
    min_len: int = 0

    def validate(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list) or not self.min_len <= len(value) <= self.max_len:
            raise self.fail(
                where, f"a list of {self.min_len} to {self.max_len} items", value
            )
        return [self.inner.validate(v, f"{where}[{i}]") for i, v in enumerate(value)]


@dataclass(frozen=True)
class AnyJson(Field):
    """Free-form JSON (numbers finite, strings short, depth and item count bounded)."""

    max_items: int = 1000
    max_depth: int = 4
    max_int: int = 10**6

    def validate(self, value: Any, where: str, depth: int = 0) -> Any:
        if depth > self.max_depth:
            raise self.fail(where, f"JSON nested at most {self.max_depth} deep", value)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return Int(-self.max_int, self.max_int).validate(value, where)
        if isinstance(value, float):
            return Float(-self.max_int, self.max_int).validate(value, where)
        if isinstance(value, str):
            return Str().validate(value, where)
        if isinstance(value, list) and len(value) <= self.max_items:
            return [self.validate(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
        if isinstance(value, dict) and len(value) <= self.max_items:
            return {Str(100).validate(k, f"{where} key"): self.validate(v, f"{where}.{k}",
                                                                          depth + 1)
                    for k, v in value.items()}
        raise self.fail(where, f"JSON with at most {self.max_items} items per level", value)


@dataclass(frozen=True)
class Reported(Field):
    """A float as stored by ``report.to_jsonable``: a number or ``"inf"``/``"-inf"``/``"nan"``."""

    def validate(self, value: Any, where: str) -> float:
        if isinstance(value, str) and value in ("inf", "-inf", "nan"):
            return float(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise self.fail(where, 'a number or "inf"/"-inf"/"nan"', value)


@dataclass(frozen=True)
class Record(Field):
    """A JSON object with these ``fields``; ``optional`` ones may be absent.

    Unknown keys are refused, or checked against ``extra`` when it is given.
    """

    fields: Mapping[str, Field]
    optional: frozenset[str] = frozenset()
    extra: Field | None = None
    max_items: int = 1000

    def validate(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict) or len(value) > self.max_items:
            raise self.fail(where, f"a JSON object of at most {self.max_items} fields", value)
        prefix = f"{where}." if where else ""
        unknown = sorted(str(k) for k in set(value) - set(self.fields))
        if self.extra is not None:
            out = {Str(100).validate(k, f"{prefix}{k}"): self.extra.validate(value[k],
                                                                            f"{prefix}{k}")
                   for k in unknown}
            unknown = []
        else:
            out = {}
        if unknown:
            raise DataError(f"unknown field(s) {[prefix + k for k in unknown[:5]]}; the file was "
                            "not written by this version of gradleak, or was edited")
        missing = sorted(set(self.fields) - set(value) - self.optional)
        if missing:
            raise DataError(f"missing field(s) {[prefix + k for k in missing]}")
        out.update({k: f.validate(value[k], f"{prefix}{k}") for k, f in self.fields.items()
                    if k in value})
        return out


def check(schema: Field, value: Any, where: str = "", *, source: str = "",
          error: type[GradleakError] = DataError) -> Any:
    """Validates ``value`` against ``schema``.

    Args:
        schema: the expected structure.
        value: the parsed JSON (or a Python value).
        where: the name of ``value`` (a field name; empty for a whole file).
        source: the file it came from, prefixed to the message.
        error: the error class raised (e.g. ConfigError for a Python argument).
    """
    try:
        return schema.validate(value, where)
    except DataError as exc:
        raise error(f"{source}: {exc}" if source else str(exc)) from None


def observation_meta_schema(limits: Limits = DEFAULT_LIMITS) -> Record:
    """The schema of ``meta.json`` in a folder written by ``Observation.save``."""
    side = Int(1, limits.max_image_side)
    per_channel = List(Float(), limits.max_channels, 1)
    return Record(
        {
            "format": Str(choices=("gradleak.observation/1",)),
            "kind": Str(choices=("gradient", "delta")),
            "param_names": List(Str(), _MAX_TENSORS, 1),
            "data_shape": List(side, 3, 3),
            "num_classes": Int(1, limits.max_classes),
            "batch_size": Nullable(Int(1, limits.max_batch_size)),
            "normalization": Nullable(Record({"mean": per_channel, "std": per_channel})),
            "local_steps": Int(1, limits.max_local_steps),
            "local_lr": Float(0.0, 1e6, lo_open=True),
            "local_batch_size": Nullable(Int(1, limits.max_batch_size)),
            "loss": Str(100),
            "train_mode": Bool(),
            "defense": Nullable(Str(10_000)),
            "defense_report": Nullable(Record({}, extra=AnyJson(max_items=1000), max_items=1000)),
            "model_spec": Nullable(Record({"name": Str(100), "kwargs": Record(
                {"num_classes": Int(1, limits.max_classes), "in_shape": List(side, 3, 3),
                 "seed": Nullable(Int(0, 2**63 - 1))},
                optional=frozenset({"num_classes", "in_shape", "seed"}),
                extra=AnyJson(max_items=100), max_items=100)})),
        },
        optional=frozenset({"defense_report"}),
    )


def check_observation_meta(
    meta: Mapping[str, Any], where: str, limits: Limits = DEFAULT_LIMITS
) -> None:
    """Cross-field checks of observation metadata (channels vs normalisation)."""
    channels = meta["data_shape"][0]
    if channels > limits.max_channels:
        raise DataError(f"{where}: field 'data_shape' has {channels} channels, more than "
                        f"{limits.max_channels}")
    norm = meta.get("normalization")
    if norm is not None and not len(norm["mean"]) == len(norm["std"]) == channels:
        raise DataError(f"{where}: field 'normalization' needs one mean and std per channel "
                        f"({channels})")
    if norm is not None and min(norm["std"]) <= 0:
        raise DataError(f"{where}: field 'normalization.std' must be positive")


def run_trace_schema(limits: Limits = DEFAULT_LIMITS) -> Record:
    """The schema of ``trace.json`` in a run folder written by ``report.write_run``."""
    loss = Reported()
    return Record(
        {
            "format": Str(choices=("gradleak.run/1",)),
            "attack": Str(100),
            "losses": List(List(loss, 4096), 1_000_000),
            "snapshot_iterations": List(Int(0, 10**9), 100_000),
            "restart_scores": List(loss, 4096),
            "best_restart": Int(0, 4095),
            "wall_time": Float(0.0),
            "expected": Nullable(Int(0, limits.max_batch_size)),
        },
        optional=frozenset({"losses", "snapshot_iterations", "restart_scores", "best_restart",
                            "wall_time", "attack", "expected"}),
    )
