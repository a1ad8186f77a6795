"""Threat: dataset files crafted to crash, exhaust memory or run code in the readers.

MNIST IDX headers that lie, gzip bombs, CIFAR batches with code or wrong types (read by a
restricted unpickler, never ``pickle.load``), decompression-bomb and truncated images in an
image folder: each is a ``DataError`` saying what is wrong.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import gradleak as gl
from gradleak.data import mnist
from gradleak.errors import DataError


# ------------------------------------------------------------------------------ MNIST
def _idx(dtype_code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(">BBBB", 0, 0, dtype_code, len(dims)) + struct.pack(
        f">{len(dims)}I", *dims) + payload


def _mnist(folder: Path, images: bytes, labels: bytes) -> Path:
    (folder / "train-images-idx3-ubyte").write_bytes(images)
    (folder / "train-labels-idx1-ubyte").write_bytes(labels)
    return folder


GOOD_IMAGES = _idx(0x08, (2, 4, 4), bytes(32))
GOOD_LABELS = _idx(0x08, (2,), bytes([1, 2]))


@pytest.mark.parametrize(
    ("images", "labels", "fragment"),
    [
        # dims whose int64 product wraps around to the real payload size
        (_idx(0x08, (2**32 - 1, 2**32 - 1, 2**32 - 1), bytes(32)), GOOD_LABELS, "corrupt"),
        (_idx(0x08, (2, 0, 4), b""), GOOD_LABELS, "zero"),
        (_idx(0x08, (2, 4), bytes(8)), GOOD_LABELS, "not an image file"),
        (GOOD_IMAGES, _idx(0x0D, (2,), struct.pack(">ff", 1.5, 2.0)), "integers"),
        (GOOD_IMAGES, _idx(0x08, (2,), bytes([1, 200])), "labels outside"),
        (GOOD_IMAGES[:10], GOOD_LABELS, "truncated"),
    ],
    ids=["overflowing-dims", "zero-dim", "2d-images", "float-labels", "label-range",
         "truncated-header"],
)
def test_mnist_lying_headers(tmp_path: Path, images: bytes, labels: bytes,
                             fragment: str) -> None:
    root = _mnist(tmp_path, images, labels)
    with pytest.raises(DataError, match=fragment):
        gl.data.load("mnist", root=root, n=1)


def test_mnist_gzip_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist, "MAX_IDX_BYTES", 10_000)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(_idx(0x08, (1000, 10, 10), bytes(100_000))))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(GOOD_LABELS)
    with pytest.raises(DataError, match="more than 10000 bytes"):
        gl.data.load("mnist", root=tmp_path, n=1)


# ------------------------------------------------------------------------------ CIFAR
def _cifar(folder: Path, batch: Any) -> Path:
    root = folder / "cifar-10-batches-py"
    root.mkdir()
    (root / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    return root


class _Shell:
    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, ("echo pwned",))


DATA = np.zeros((2, 3072), dtype=np.uint8)


@pytest.mark.parametrize(
    ("batch", "fragment"),
    [
        ({b"data": _Shell(), b"labels": [0, 1]}, "not allowed"),
        ({b"data": DATA, b"labels": ["cat", "dog"]}, "integers"),
        ({b"data": DATA, b"labels": [0.5, 1.0]}, "integers"),
        ({b"data": DATA, b"labels": [True, False]}, "integers"),
        ({b"data": DATA, b"labels": [[0], [1, 2]]}, "labels"),
        ({b"data": DATA, b"labels": {"a": 1}}, "labels"),
        ({b"data": DATA.astype(np.float64), b"labels": [0, 1]}, "corrupt"),
        ({b"data": "pixels", b"labels": [0, 1]}, "corrupt"),
        ({b"labels": [0, 1]}, "lacks 'data'"),
        ([1, 2, 3], "expected a dict"),
    ],
)
def test_cifar_malformed_batches(tmp_path: Path, batch: Any, fragment: str,
                                 capfd: pytest.CaptureFixture[str]) -> None:
    root = _cifar(tmp_path, batch)
    with pytest.raises(DataError, match=fragment):
        gl.data.load("cifar10", root=root, split="test", n=1)
    assert "pwned" not in capfd.readouterr().out


def test_cifar_truncated_pickle(tmp_path: Path) -> None:
    root = _cifar(tmp_path, {b"data": DATA, b"labels": [0, 1]})
    raw = (root / "test_batch").read_bytes()
    (root / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="corrupt"):
        gl.data.load("cifar10", root=root, split="test", n=1)


# ------------------------------------------------------------------------------ images
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(side: int) -> bytes:
    """A tiny PNG whose header claims side x side pixels (no real pixel data)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def _folder(tmp_path: Path, name: str, data: bytes) -> Path:
    cls = tmp_path / "imgs" / "cat"
    cls.mkdir(parents=True)
    (cls / name).write_bytes(data)
    return tmp_path / "imgs"


def test_decompression_bomb_header(tmp_path: Path) -> None:
    root = _folder(tmp_path, "bomb.png", _bomb_png(100_000))  # 10^10 pixels claimed
    with pytest.raises(DataError, match="too large"):
        gl.data.load("imagefolder", root=root, n=1)


def test_image_between_one_and_two_times_the_limit(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow only warns up to 2x
    buf = tmp_path / "x.png"
    Image.new("RGB", (12, 12)).save(buf)  # 144 pixels
    root = _folder(tmp_path, "img.png", buf.read_bytes())
    with pytest.raises(DataError, match="MAX_IMAGE_PIXELS"):
        gl.data.load("imagefolder", root=root, n=1)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty"])
def test_broken_images(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "ok.jpg"
    Image.new("RGB", (40, 40), (200, 10, 10)).save(path, quality=95)
    data = {"truncated": path.read_bytes()[:200], "garbage": b"\x00GIF89a" * 10,
            "empty": b""}[kind]
    root = _folder(tmp_path, "broken.jpg", data)
    with pytest.raises(DataError, match="not a readable image"):
        gl.data.load("imagefolder", root=root, n=1)
