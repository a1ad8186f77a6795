"""Fingerprints of a model: its architecture and the exact parameters it holds.

An inverter learns the map gradient -> image of *one* model at *one* point of its training:
gradients of other weights are other functions of the data. A checkpoint therefore records
two SHA-256 digests and is refused when either differs from the observed model:

* ``architecture``: module types in order, every state tensor's name, shape and dtype;
* ``parameters``: the bytes of every state tensor (parameters and buffers), in name order.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

__all__ = ["architecture_fingerprint", "parameter_fingerprint"]


def architecture_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the module types and the state tensors' names, shapes and dtypes."""
    h = hashlib.sha256()
    for name, module in model.named_modules():
        h.update(f"{name}:{type(module).__name__};".encode())
    for name, t in model.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
    return h.hexdigest()


def parameter_fingerprint(model: nn.Module) -> str:
    """SHA-256 of every state tensor's values (CPU, contiguous), in name order."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        data = t.detach().to("cpu").contiguous()
        if data.dtype == torch.bfloat16:
            data = data.float()
        h.update(data.numpy().tobytes())
    return h.hexdigest()
