"""The offline domains ``digits``, ``faces`` and ``patches``: shapes, ranges, splits."""

from __future__ import annotations

import pytest
import torch

import gradleak as gl
from gradleak.data.domains import PATCH_HOLDOUT_PHOTOS, patch_boxes, split_mask
from gradleak.data.sources import CLASS_NAMES
from gradleak.errors import ConfigError
from gradleak.metrics import pairwise_mse

DOMAINS = {"digits": (1, 1438, 359), "faces": (1, 80, 20), "patches": (3, 1600, 100)}


def test_domains_are_registered() -> None:
    assert set(DOMAINS) <= set(gl.data.available())


@pytest.mark.parametrize("name", sorted(DOMAINS))
@pytest.mark.parametrize("split", ["train", "holdout"])
def test_shapes_ranges_and_counts(name: str, split: str) -> None:
    channels, n_train, n_holdout = DOMAINS[name]
    info = gl.data.info(name, split=split)
    assert info.num_images == (n_train if split == "train" else n_holdout)
    assert info.channels == channels
    for size in (32, 20):
        x, y = gl.data.load(name, size=size, n=6, seed=0, split=split)
        assert x.shape == (6, channels, size, size) and x.dtype == torch.float32
        assert y.shape == (6,) and y.dtype == torch.int64
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert float(x.std()) > 0.05  # real images, not blank tiles
    rgb, _ = gl.data.load(name, size=16, n=3, seed=1, split=split, channels=3)
    assert rgb.shape == (3, 3, 16, 16)
    if channels == 1:
        assert torch.equal(rgb[:, 0], rgb[:, 1]) and torch.equal(rgb[:, 1], rgb[:, 2])


def test_labels() -> None:
    _, y = gl.data.load("digits", n=None, split="train")
    assert sorted(set(y.tolist())) == list(range(10))
    _, y = gl.data.load("faces", n=None, split="holdout")
    assert set(y.tolist()) == {0}
    _, y = gl.data.load("patches", n=None, split="holdout")
    assert {CLASS_NAMES[i] for i in y.tolist()} == set(PATCH_HOLDOUT_PHOTOS)
    _, y = gl.data.load("patches", n=None, split="train")
    assert not {CLASS_NAMES[i] for i in y.tolist()} & set(PATCH_HOLDOUT_PHOTOS)


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_deterministic_and_seeded(name: str) -> None:
    a, la = gl.data.load(name, n=5, seed=3, split="holdout")
    b, lb = gl.data.load(name, n=5, seed=3, split="holdout")
    c, _ = gl.data.load(name, n=5, seed=4, split="holdout")
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    a.zero_()  # callers own their tensors: the cache is not touched
    d, _ = gl.data.load(name, n=5, seed=3, split="holdout")
    assert torch.equal(d, b)


def test_split_mask_partitions_indices() -> None:
    train, holdout = split_mask(1797, "train"), split_mask(1797, "holdout")
    assert not (train & holdout).any() and (train | holdout).all()
    assert int(holdout.sum()) == 359


@pytest.mark.parametrize("name", ["digits", "faces"])
def test_no_holdout_image_is_in_train(name: str) -> None:
    train, _ = gl.data.load(name, size=8, n=None, split="train")
    holdout, _ = gl.data.load(name, size=8, n=None, split="holdout")
    d = pairwise_mse(holdout, train)
    # sklearn's digits hold a few near-duplicate drawings; distinct images differ clearly
    assert float(d.min()) > 0.0
    assert float((d.min(dim=1).values < 1e-6).float().mean()) < 0.01


def test_patch_splits_use_disjoint_photos() -> None:
    train = {CLASS_NAMES[label] for label, _ in patch_boxes("train")}
    holdout = {CLASS_NAMES[label] for label, _ in patch_boxes("holdout")}
    assert holdout == set(PATCH_HOLDOUT_PHOTOS) and not train & holdout
    assert len(set(patch_boxes("train"))) == len(patch_boxes("train"))  # distinct boxes


def test_unknown_split_and_options_refused() -> None:
    with pytest.raises(ConfigError, match="split"):
        gl.data.load("digits", split="test")
    with pytest.raises(ConfigError, match="options"):
        gl.data.load("faces", flip=True)
