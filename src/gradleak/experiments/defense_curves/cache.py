"""``defense-curves``' result cache: finished runs kept in the output folder.

Every finished attack run and utility training is appended, as one JSON line, to
``cache.jsonl`` under a key holding everything its result depends on (model, data, defense,
recipe and overrides, seed, training settings). A rerun into the same folder -- after an
interruption, or with more seeds or points -- computes only what is new. The file is the
experiment's own output, read back as JSON only (never unpickled) and checked line by line;
after changing gradleak's code, delete it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gradleak import safeio
from gradleak.errors import DataError

CACHE_NAME = "cache.jsonl"


def cache_key(kind: str, **parts: Any) -> str:
    """The canonical key of a result: ``kind`` plus its inputs, as sorted JSON."""
    return json.dumps({"kind": kind, **parts}, sort_keys=True, default=str)


def _valid_value(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return not math.isnan(value)
    if isinstance(value, list):
        return all(_valid_value(v) for v in value)
    return False


class ResultCache:
    """Results by key, read from and appended to ``folder / cache.jsonl``.

    Args:
        folder: the output folder (None: a cache that keeps nothing).

    Raises:
        DataError: a line of an existing cache is not a ``{"key": str, "value": {...}}``
            object of JSON scalars (a truncated last line, left by an interrupted run, is
            skipped).
    """

    def __init__(self, folder: Path | None) -> None:
        self.path = None if folder is None else folder / CACHE_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        self.hits = 0
        if self.path is None or not self.path.exists():
            return
        raw = safeio.read_bytes(self.path, max_bytes=safeio.MAX_JSON_BYTES)
        try:
            lines = raw.decode("utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{self.path} is not UTF-8 text; delete the file") from exc
        for i, line in enumerate(lines):
            try:
                item = json.loads(line)
            except (ValueError, RecursionError):
                if i == len(lines) - 1:
                    continue  # the run was interrupted while writing its last line
                item = None
            if not (isinstance(item, dict) and isinstance(item.get("key"), str)
                    and isinstance(item.get("value"), dict)
                    and all(isinstance(k, str) and _valid_value(v)
                            for k, v in item["value"].items())):
                raise DataError(f"{self.path}, line {i + 1}: not a defense-curves cache entry; "
                                "delete the file (or run with cache=False)")
            self.entries[item["key"]] = item["value"]

    def get(self, key: str) -> dict[str, Any] | None:
        """A copy of the cached result for ``key``, or None."""
        value = self.entries.get(key)
        if value is None:
            return None
        self.hits += 1
        return dict(value)

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Keeps ``value`` under ``key`` and writes the file at once, atomically and never
        through a link (a value that would not read back -- NaN, a non-JSON type -- is not
        kept)."""
        if not all(_valid_value(v) for v in value.values()):
            return
        self.entries[key] = dict(value)
        if self.path is not None:
            safeio.write_text(self.path, "".join(
                json.dumps({"key": k, "value": v}) + "\n" for k, v in self.entries.items()))
