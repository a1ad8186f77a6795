"""Threat: a run folder (from someone else, or half-written) with malformed files.

``gradleak report DIR`` / :func:`gradleak.report.load_run` must answer every malformed file
with a ``DataError`` that names the file and the problem, never a raw KeyError/TypeError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from gradleak.errors import DataError
from gradleak.report import load_run, write_run
from tests.report.factory import make_run


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    rec, truth = make_run(n=2, snapshots=3)
    out = tmp_path_factory.mktemp("pristine")
    write_run(out, rec, truth)
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _copy(pristine: dict[str, bytes], tmp_path: Path) -> Path:
    for name, data in pristine.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


def _edit_trace(run: Path, **changes: Any) -> None:
    tr = json.loads((run / "trace.json").read_text())
    tr.update(changes)
    (run / "trace.json").write_text(json.dumps(tr))


def test_pristine_folder_loads(pristine: dict[str, bytes], tmp_path: Path) -> None:
    data = load_run(_copy(pristine, tmp_path))
    assert data.rec.images.shape == (2, 3, 16, 16) and data.truth is not None


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"best_restart": "0"}, "best_restart"),
        ({"best_restart": True}, "best_restart"),
        ({"wall_time": float("nan")}, "wall_time"),
        ({"losses": [["a", 1.0]]}, "losses"),
        ({"losses": 5}, "losses"),
        ({"restart_scores": [None]}, "restart_scores"),
        ({"snapshot_iterations": [-1]}, "snapshot_iterations"),
        ({"attack": {"name": "ig"}}, "attack"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_trace_fields(pristine: dict[str, bytes], tmp_path: Path,
                          changes: dict[str, Any], fragment: str) -> None:
    run = _copy(pristine, tmp_path)
    _edit_trace(run, **changes)
    with pytest.raises(DataError, match=fragment):
        load_run(run)


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("trace.json", b"[]", "not a gradleak.run/1"),
        ("trace.json", b"{", "not valid JSON"),
        ("metrics.json", b"[1, 2]", "JSON object"),
        ("config.json", b'"text"', "JSON object"),
        ("config.json", b'{"attack_config": [1]}', "attack_config"),
        ("reconstruction.safetensors", b"\x00" * 20, "corrupt"),
    ],
)
def test_bad_files(pristine: dict[str, bytes], tmp_path: Path, name: str, content: bytes,
                   fragment: str) -> None:
    run = _copy(pristine, tmp_path)
    (run / name).write_bytes(content)
    with pytest.raises(DataError, match=fragment):
        load_run(run)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("images", torch.zeros(2, 16, 16), "images"),
        ("images", torch.zeros(2, 3, 16, 16, dtype=torch.uint8), "images"),
        ("images", torch.full((2, 3, 16, 16), float("nan")), "NaN"),
        ("labels", torch.tensor([True, False]), "labels"),
        ("labels", torch.tensor([1, 2, 3]), "labels"),
        ("truth_labels", None, "truth"),
        ("snapshots", torch.zeros(3, 2, 3, 16), "snapshots"),
        ("payload", torch.zeros(1), "unexpected"),
        ("images", None, "images"),
    ],
)
def test_bad_tensors(pristine: dict[str, bytes], tmp_path: Path, key: str,
                     value: torch.Tensor | None, fragment: str) -> None:
    run = _copy(pristine, tmp_path)
    t = load_file(str(run / "reconstruction.safetensors"))
    if value is None:
        t.pop(key)
    else:
        t[key] = value
    save_file(t, str(run / "reconstruction.safetensors"))
    with pytest.raises(DataError, match=fragment):
        load_run(run)


def test_truncated_tensor_file(pristine: dict[str, bytes], tmp_path: Path) -> None:
    run = _copy(pristine, tmp_path)
    path = run / "reconstruction.safetensors"
    path.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(DataError, match="corrupt"):
        load_run(run)


def test_oversized_json_refused(pristine: dict[str, bytes], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from gradleak import safeio

    run = _copy(pristine, tmp_path)
    monkeypatch.setattr(safeio, "MAX_JSON_BYTES", 10)
    with pytest.raises(DataError, match="bytes"):
        load_run(run)


WEIRD = [None, "x", "7", -1, 10**30, 1e308, float("nan"), True, [], [[None]], {}, {"a": 1}]


def test_every_trace_and_config_field_with_every_weird_value(pristine: dict[str, bytes],
                                                             tmp_path: Path) -> None:
    """A small deterministic fuzz: only gradleak's own errors may come out, never a raw one."""
    from gradleak.errors import GradleakError

    run = _copy(pristine, tmp_path)
    escaped = []
    for name in ("trace.json", "config.json"):
        original = json.loads(pristine[name])
        for field in original:
            for value in WEIRD:
                (run / name).write_text(json.dumps({**original, field: value}))
                try:
                    load_run(run)
                except GradleakError:
                    continue
                except Exception as exc:  # noqa: BLE001  (the point of the test)
                    escaped.append((name, field, value, repr(exc)))
        (run / name).write_bytes(pristine[name])
    assert not escaped, escaped
