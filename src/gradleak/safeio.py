"""Safe files: every artefact gradleak writes, and the untrusted files it reads back.

Run folders and saved observations are exchanged between people; a folder received from
someone else may hold planted symbolic links (``index.html -> ~/.bashrc``). The rules here:

* **Never follow a symlink when writing.** The target file and the folder it goes into must
  not be symbolic links (:class:`~gradleak.errors.DataError` otherwise); folders below an
  explicit ``root`` are checked component by component, so nothing is written outside it.
* **Atomic writes.** Data go to a fresh temporary file in the same folder (created with
  ``O_EXCL | O_NOFOLLOW``, relative to an open descriptor of the folder where the platform
  allows it) and are renamed over the target: a crash leaves the old file or the new one,
  never half a file, and a rename replaces the directory entry, never what it pointed to.
* **Bounded reads.** Untrusted files are read without following a final symlink and with a
  size ceiling, so a planted link cannot pull a private file into a report and a huge file
  cannot exhaust memory.

Residual risk: someone who can modify the folder *while* gradleak writes could still race
the checks of folders above the final one; the final folder itself is pinned by a
descriptor on POSIX systems.

Example:
    >>> from gradleak import safeio
    >>> out = safeio.ensure_dir("runs/x")                    # doctest: +SKIP
    >>> safeio.write_text(out / "note.txt", "hello")         # doctest: +SKIP
    PosixPath('runs/x/note.txt')
"""

from __future__ import annotations

import io
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from gradleak.errors import DataError

__all__ = [
    "MAX_JSON_BYTES",
    "check_out_dir",
    "check_target",
    "ensure_dir",
    "read_bytes",
    "read_json",
    "write_bytes",
    "write_text",
    "write_with",
]

MAX_JSON_BYTES = 64 * 2**20
"""Largest JSON file :func:`read_json` accepts (64 MiB; metadata is kilobytes)."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_DIR_FD = os.open in os.supports_dir_fd and os.rename in os.supports_dir_fd and bool(_DIRECTORY)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataError(f"cannot use {path} ({exc}); choose another path") from exc


def _refuse_link(path: Path, what: str) -> os.stat_result | None:
    st = _lstat(path)
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise DataError(
            f"refusing to use {path}: the {what} is a symbolic link (to {os.readlink(path)!r}); "
            "gradleak never writes through symlinks. Remove the link or choose another folder"
        )
    return st


def _components(path: Path, root: Path | None) -> list[Path]:
    """The folders to check: ``path`` alone, or every folder from ``root`` down to it."""
    if root is None:
        return [path]
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        raise DataError(f"refusing to write {path}: it lies outside the folder {root}")
    out = [root]
    cur = root
    for part in Path(rel).parts if rel != os.curdir else ():
        cur = cur / part
        out.append(cur)
    return out


def ensure_dir(
    path: str | Path, *, root: str | Path | None = None, create: bool = True
) -> Path:
    """Creates the folder ``path`` (and missing parents) and checks it is a real folder.

    Args:
        path: the folder.
        root: when given, ``path`` must lie inside it and no folder from ``root`` down to
            ``path`` may be a symbolic link; without it only ``path`` itself is checked
            (folders above it are the user's choice).
        create: create missing folders; when False a missing folder is an error.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: ``path`` (or a folder below ``root``) is a symlink or not a folder, or
            cannot be created.
    """
    out = Path(path)
    for folder in _components(out, None if root is None else Path(root)):
        st = _refuse_link(folder, "folder")
        if st is None and not create:
            raise DataError(f"the folder {folder} does not exist")
        if st is None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DataError(f"cannot create the folder {folder} ({exc})") from exc
            st = _refuse_link(folder, "folder")
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise DataError(f"{folder} exists and is not a folder; choose another output path")
    return out


def check_out_dir(path: str | Path) -> Path:
    """Checks, before any work, that an output folder can be written.

    Creates the folder if needed and writes (then removes) a probe file, so that a file
    path, a symlink or an unwritable location is reported before a long attack runs.

    Raises:
        DataError: ``path`` is a file, a symlink, or not writable.
    """
    out = ensure_dir(path)
    probe = out / f".gradleak-probe-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataError(f"cannot write into {out} ({exc}); choose a writable folder") from exc
    return out


@contextmanager
def _folder_fd(folder: Path) -> Iterator[int | None]:
    if not _DIR_FD:
        yield None
        return
    try:
        fd = os.open(folder, os.O_RDONLY | _DIRECTORY | _NOFOLLOW)
    except OSError as exc:
        raise DataError(f"cannot open the folder {folder} without following links ({exc})") from exc
    try:
        yield fd
    finally:
        os.close(fd)


def check_target(path: str | Path) -> Path:
    """Checks that ``path`` may be (re)written: absent, or a regular file that is not a link.

    Lets a writer refuse a planted link before it does any work.

    Raises:
        DataError: ``path`` is a symbolic link, a folder or another special file.
    """
    target = Path(path)
    st = _refuse_link(target, "target file")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise DataError(f"refusing to replace {target}: it is not a regular file")
    return target


def write_bytes(path: str | Path, data: bytes, *, root: str | Path | None = None) -> Path:
    """Writes ``data`` to ``path`` atomically, never through a symbolic link.

    The folder is created (see :func:`ensure_dir`, which also explains ``root``); an
    existing regular file is replaced; a symlink, folder or other special file at ``path``
    is refused.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: ``path`` or its folder is a symlink, or the write fails.
    """
    target = Path(path)
    folder = ensure_dir(target.parent, root=root)
    check_target(target)
    tmp_name = f".{target.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY
    with _folder_fd(folder) as dfd:
        tmp: str | Path = tmp_name if dfd is not None else folder / tmp_name
        try:
            fd = os.open(tmp, flags, 0o644, dir_fd=dfd)
        except OSError as exc:
            raise DataError(f"cannot write into {folder} ({exc})") from exc
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if dfd is not None:
                os.replace(tmp_name, target.name, src_dir_fd=dfd, dst_dir_fd=dfd)
            else:
                os.replace(tmp, target)
        except BaseException as exc:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise DataError(f"cannot write {target} ({exc})") from exc
            raise
    return target


def write_with(
    path: str | Path, writer: Callable[[BinaryIO], object], *, root: str | Path | None = None
) -> Path:
    """Lets ``writer`` fill a buffer (e.g. ``lambda f: image.save(f, format="PNG")`` or a
    figure's ``savefig``), then stores it with :func:`write_bytes`."""
    buf = io.BytesIO()
    writer(buf)
    return write_bytes(path, buf.getvalue(), root=root)


def write_text(path: str | Path, text: str, *, root: str | Path | None = None) -> Path:
    """:func:`write_bytes` of UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"), root=root)


def read_bytes(path: str | Path, *, max_bytes: int) -> bytes:
    """Reads a regular file of at most ``max_bytes``, refusing a symbolic link.

    Raises:
        DataError: the file is missing, a symlink, not a regular file, or too large.
    """
    src = Path(path)
    st = _refuse_link(src, "file")
    if st is None:
        raise DataError(f"{src} is missing")
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{src} is not a regular file")
    if st.st_size > max_bytes:
        raise DataError(
            f"{src} holds {st.st_size} bytes, more than the {max_bytes} allowed for this file; "
            "it is not a file gradleak wrote"
        )
    try:
        fd = os.open(src, os.O_RDONLY | _NOFOLLOW | _BINARY)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise DataError(f"cannot read {src} ({exc})") from exc
    if len(data) > max_bytes:
        raise DataError(f"{src} grew past {max_bytes} bytes while being read")
    return data


def read_json(path: str | Path, *, max_bytes: int | None = None) -> Any:
    """Parses a JSON file read with :func:`read_bytes` (at most :data:`MAX_JSON_BYTES`).

    Raises:
        DataError: unreadable (see :func:`read_bytes`), not UTF-8, or not valid JSON.
    """
    raw = read_bytes(path, max_bytes=MAX_JSON_BYTES if max_bytes is None else max_bytes)
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, int digits
        raise DataError(f"{path} is not valid JSON ({exc})") from exc
