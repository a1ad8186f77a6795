"""The one function through which gradleak writes its artefacts (reports, JSON, tensors).

Every file a run, the demo or an experiment writes goes through :func:`write_artifact`, so
that how files are written (e.g. atomically, refusing symlinks) is decided in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradleak.persistence.jsonio import dumps


def write_artifact(path: str | Path, data: bytes | str) -> Path:
    """Writes ``data`` (bytes, or text as UTF-8) to ``path``, creating its folder.

    Args:
        path: the file to write (replaced if it exists).
        data: the file's content.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    out.write_bytes(payload)
    return out


def write_json(path: str | Path, obj: Any) -> Path:
    """Writes ``obj`` as indented strict JSON (see :func:`gradleak.persistence.dumps`)."""
    return write_artifact(path, dumps(obj, indent=2) + "\n")
