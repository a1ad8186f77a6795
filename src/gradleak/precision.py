"""Full float32 precision for gradient matching on GPUs.

On Ampere and newer NVIDIA GPUs, PyTorch runs cuDNN convolutions in TF32 by default (a 10-bit
mantissa). Gradient inversion matches gradients whose differences are small, and the matching
objective differentiates through a second backward pass, so TF32 rounding (about 1e-3
relative) is large against the signal: restarts batched with ``torch.func.vmap`` then no
longer agree with one-by-one evaluation, and reconstructions get worse. The attacks and the
experiments' simulated clients therefore run inside :func:`full_precision`. It changes
nothing on the CPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def full_precision() -> Iterator[None]:
    """Disables TF32 for cuDNN convolutions and CUDA matmuls, restoring the flags after.

    Example:
        >>> with full_precision():
        ...     y = torch.ones(2, 2) @ torch.ones(2, 2)
    """
    with warnings.catch_warnings():  # newer torch deprecates the allow_tf32 flags
        warnings.simplefilter("ignore")
        saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
