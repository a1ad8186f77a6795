"""Adam's state as plain named tensors, so a training checkpoint can be resumed without pickle.

Only the per-parameter state tensors (``step``, ``exp_avg``, ``exp_avg_sq``) are stored; the
hyper-parameters come from the training settings recorded in the checkpoint's JSON.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradleak.errors import DataError

__all__ = ["optimizer_from_tensors", "optimizer_to_tensors"]

_KEYS = ("step", "exp_avg", "exp_avg_sq")


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> dict[str, Tensor]:
    """``{"optim.<param index>.<name>": tensor}`` of the optimiser's per-parameter state."""
    out: dict[str, Tensor] = {}
    for i, st in opt.state_dict()["state"].items():
        for k in _KEYS:
            if k in st:
                v = st[k]
                out[f"optim.{i}.{k}"] = v if isinstance(v, Tensor) else torch.tensor(float(v))
    return out


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> None:
    """Restores the state written by :func:`optimizer_to_tensors` (shapes are checked).

    Raises:
        DataError: a stored tensor does not fit the optimiser's parameters.
    """
    sd = opt.state_dict()
    params = [p for g in opt.param_groups for p in g["params"]]
    state: dict[int, dict[str, Tensor]] = {}
    for key, v in tensors.items():
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "optim" or not parts[1].isdigit():
            continue
        if parts[2] not in _KEYS:
            continue
        i = int(parts[1])
        if i >= len(params):
            raise DataError("the checkpoint's optimiser state does not fit the inverter")
        want = () if parts[2] == "step" else tuple(params[i].shape)
        if tuple(v.shape) != want or not torch.isfinite(v).all():
            raise DataError("the checkpoint's optimiser state is corrupt; train from scratch")
        state.setdefault(i, {})[parts[2]] = v.float()
    sd["state"] = state
    opt.load_state_dict(sd)
