"""Checks of a run folder's files before a report is redrawn from them (they may be tampered).

``trace.json`` is validated against :func:`gradleak.schema.run_trace_schema`; the tensors of
``reconstruction.safetensors`` must have the shapes, dtypes and sizes :func:`write_run`
writes (images (N, C, H, W) floating point, labels (N,) integers, snapshots (S, N, C, H, W)),
and ``metrics.json`` / ``config.json`` must be JSON objects. Every failure is a
:class:`~gradleak.errors.DataError` naming the file and what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gradleak.errors import DataError
from gradleak.schema import DEFAULT_LIMITS, Limits, check, run_trace_schema

MAX_SNAPSHOTS = 10_000
TENSOR_KEYS = frozenset({"images", "labels", "truth_images", "truth_labels", "snapshots"})


def check_trace(raw: Any, source: Path, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The validated ``trace.json`` (see :func:`gradleak.schema.run_trace_schema`)."""
    return dict(check(run_trace_schema(limits), raw, source=str(source)))


def check_object(raw: Any, source: Path) -> dict[str, Any]:
    """``metrics.json`` / ``config.json`` must hold a JSON object."""
    if not isinstance(raw, Mapping):
        raise DataError(f"{source} must hold a JSON object, not {type(raw).__name__}")
    return dict(raw)


def _images(t: Tensor, key: str, source: Path, limits: Limits, dims: int = 4) -> None:
    shape = tuple(t.shape)
    ok = t.dim() == dims and t.is_floating_point() and all(s >= 1 for s in shape)
    if not ok:
        raise DataError(f"{source}: tensor {key!r} must be a floating-point "
                        f"{'(S, N, C, H, W)' if dims == 5 else '(N, C, H, W)'} batch, got "
                        f"{t.dtype} {shape}")
    n, c, h, w = shape[-4:]
    if n > limits.max_batch_size or c > limits.max_channels or max(h, w) > limits.max_image_side:
        raise DataError(f"{source}: tensor {key!r} {shape} exceeds the size limits "
                        "(gradleak.schema.Limits)")
    if dims == 5 and shape[0] > MAX_SNAPSHOTS:
        raise DataError(f"{source}: {shape[0]} snapshots, more than {MAX_SNAPSHOTS}")
    if not torch.isfinite(t).all():
        raise DataError(f"{source}: tensor {key!r} contains NaN or inf")


def _labels(t: Tensor, key: str, n: int, source: Path) -> None:
    if t.dim() != 1 or t.dtype not in (torch.int64, torch.int32) or len(t) != n:
        raise DataError(f"{source}: tensor {key!r} must hold {n} integer labels, got "
                        f"{t.dtype} {tuple(t.shape)}")


def check_run_tensors(t: Mapping[str, Tensor], source: Path,
                      limits: Limits = DEFAULT_LIMITS) -> None:
    """Checks the tensors of ``reconstruction.safetensors`` (see the module docstring)."""
    unknown = sorted(set(t) - TENSOR_KEYS)
    if unknown:
        raise DataError(f"{source} holds unexpected tensor(s) {unknown[:5]}; it was edited")
    if "images" not in t:
        raise DataError(f"{source} lacks the reconstructed 'images'")
    _images(t["images"], "images", source, limits)
    if "labels" in t:
        _labels(t["labels"], "labels", len(t["images"]), source)
    if ("truth_images" in t) != ("truth_labels" in t):
        raise DataError(f"{source} holds only one of 'truth_images' and 'truth_labels'")
    if "truth_images" in t:
        _images(t["truth_images"], "truth_images", source, limits)
        _labels(t["truth_labels"], "truth_labels", len(t["truth_images"]), source)
        if t["truth_images"].shape[1:] != t["images"].shape[1:]:
            raise DataError(f"{source}: 'truth_images' and 'images' differ in image shape")
    if "snapshots" in t:
        _images(t["snapshots"], "snapshots", source, limits, dims=5)
