"""Training checkpoints for resuming :func:`gradleak.generative.train`: safetensors + JSON.

A checkpoint holds every trained module's state, every optimiser's state, the training random
generator's state and the number of finished epochs, so that training resumed from it gives
bit-for-bit the weights of an uninterrupted run. Tensors are named ``module.<name>.<key>``,
``optim.<name>.<param index>.<key>`` and ``rng``; the header keeps the training config, the
epoch and the optimisers' hyper-parameters as JSON. Nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gradleak.errors import ConfigError, DataError
from gradleak.generative.kinds import Kind

FORMAT = "gradleak.generative-checkpoint/1"


def checkpoint_path(out: str | Path) -> Path:
    """Where training towards the prior file ``out`` keeps its checkpoint."""
    p = Path(out)
    return p.with_name(p.name + ".ckpt")


def save_checkpoint(
    path: Path, kind: Kind, rng: torch.Generator, epoch: int, config: dict[str, Any],
    history: list[dict[str, float]],
) -> Path:
    """Writes the full training state after ``epoch`` finished epochs."""
    from safetensors.torch import save_file

    tensors: dict[str, Tensor] = {"rng": rng.get_state()}
    for name, module in kind.modules().items():
        for key, value in module.state_dict().items():
            tensors[f"module.{name}.{key}"] = value.detach().clone().contiguous()
    groups: dict[str, Any] = {}
    for name, opt in kind.optimizers().items():
        state = opt.state_dict()
        groups[name] = state["param_groups"]
        for idx, entries in state["state"].items():
            for key, value in entries.items():
                tensors[f"optim.{name}.{idx}.{key}"] = torch.as_tensor(value).clone()
    header = {
        "format": FORMAT,
        "epoch": str(epoch),
        "config": json.dumps(config, sort_keys=True),
        "param_groups": json.dumps(groups),
        "history": json.dumps(history),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=header)
    os.replace(tmp, path)
    return path


def load_checkpoint(
    path: Path, kind: Kind, rng: torch.Generator, config: dict[str, Any]
) -> tuple[int, list[dict[str, float]]]:
    """Restores the training state saved at ``path`` into ``kind`` and ``rng``.

    Args:
        path: the checkpoint.
        kind: a freshly built objective with the same config (modules and optimisers).
        rng: the training random generator.
        config: the current training config; every field but ``epochs`` must match.

    Returns:
        ``(finished epochs, loss history)``.

    Raises:
        DataError: the file is corrupt or does not fit the networks.
        ConfigError: it was made with other settings.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
        if header.get("format") != FORMAT:
            raise DataError(f"{path} is not a gradleak training checkpoint")
        saved = json.loads(header["config"])
        groups = json.loads(header["param_groups"])
        epoch, history = int(header["epoch"]), json.loads(header["history"])
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path} is a corrupt checkpoint ({exc}); delete it to start "
                        "afresh") from exc
    differ = sorted(k for k in set(saved) | set(config)
                    if k != "epochs" and saved.get(k) != config.get(k))
    if differ:
        raise ConfigError(
            f"{path} was made with other settings ({', '.join(differ)}); resume with the same "
            "settings, or delete the checkpoint to start afresh"
        )
    try:
        for name, module in kind.modules().items():
            prefix = f"module.{name}."
            module.load_state_dict(
                {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
        for name, opt in kind.optimizers().items():
            prefix = f"optim.{name}."
            state: dict[int, dict[str, Tensor]] = {}
            for k, v in tensors.items():
                if k.startswith(prefix):
                    idx, key = k[len(prefix):].split(".", 1)
                    state.setdefault(int(idx), {})[key] = v
            opt.load_state_dict({"state": state, "param_groups": groups[name]})
        rng.set_state(tensors["rng"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise DataError(f"{path} does not fit the networks ({exc}); delete it to start "
                        "afresh") from exc
    return epoch, history
