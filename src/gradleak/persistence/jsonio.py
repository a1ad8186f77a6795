"""The one JSON encoding of gradleak's files (metrics, configs, traces, experiment results).

Tensors and numpy values become lists / numbers, tuples and sets become lists, objects with
``to_dict()`` (e.g. :class:`gradleak.metrics.Scores`) their dict, and non-finite floats the
strings ``"inf"``, ``"-inf"`` and ``"nan"`` so that every file is strict JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import Tensor


def to_jsonable(obj: Any) -> Any:
    """Converts tensors, numpy values, tuples and non-finite floats to strict JSON values.

    Example:
        >>> to_jsonable({"psnr": float("inf"), "shape": (1, 2)})
        {'psnr': 'inf', 'shape': [1, 2]}
    """
    if isinstance(obj, Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray | np.generic):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [to_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    return str(obj)


def dumps(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``obj`` (after :func:`to_jsonable`); ``kwargs`` go to ``json.dumps``."""
    return json.dumps(to_jsonable(obj), allow_nan=False, **kwargs)
