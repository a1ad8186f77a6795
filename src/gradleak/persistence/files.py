"""The one function through which gradleak writes its artefacts (reports, JSON, tensors).

Every file a run, the demo or an experiment writes goes through :func:`write_artifact`, so
that how files are written is decided in one place: atomically and never through a symbolic
link (:func:`gradleak.safeio.write_bytes`; a planted link in a received run folder is
refused with a :class:`~gradleak.errors.DataError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradleak import safeio
from gradleak.persistence.jsonio import dumps


def write_artifact(
    path: str | Path, data: bytes | str, *, root: str | Path | None = None
) -> Path:
    """Writes ``data`` (bytes, or text as UTF-8) to ``path`` atomically, creating its folder.

    Args:
        path: the file to write (an existing regular file is replaced).
        data: the file's content.
        root: when given, ``path`` must lie inside this folder and no folder from it down to
            ``path`` may be a symbolic link (see :func:`gradleak.safeio.ensure_dir`).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: ``path`` or its folder is a symbolic link or not writable.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return safeio.write_bytes(path, payload, root=root)


def write_json(path: str | Path, obj: Any, *, root: str | Path | None = None) -> Path:
    """Writes ``obj`` as indented strict JSON (see :func:`gradleak.persistence.dumps`)."""
    return write_artifact(path, dumps(obj, indent=2) + "\n", root=root)
