"""How many CPU threads torch uses for gradleak's (small) models: one, unless told otherwise.

The thread trap: torch starts one intra-op (OpenMP) thread per core. The models attacked in
gradient inversion papers are small (LeNet, a width-16 ConvNet, batches of 1-8 images), so
each operation is microseconds of work and the threads mostly wait on each other; on a
machine whose cores are busy with other processes, every parallel region waits for the
slowest, descheduled thread. ``benchmarks/threads.py`` measures it: on a shared 2-core
machine (load average about 10), ``ig`` ran 16-46x faster on one thread than with torch's
default of two: LeNet at batch 1 35.2 vs 2.2 it/s, the small BN ConvNet at batch 8 7.5 vs
0.5 it/s (the table is in that script's docstring).

Advice for Python users (the CLI applies it by itself):

* call ``gradleak.threads.use_threads()`` (or ``torch.set_num_threads(1)``) at the top of a
  script that attacks small models, or start Python with ``OMP_NUM_THREADS=1``;
* give torch more threads (``use_threads(4)``, ``gradleak attack --threads 4``) only for
  larger models (ResNets, batches of 32+) on cores nobody else is using, and measure with
  ``python benchmarks/threads.py`` first;
* when running several attacks in parallel processes, keep one thread per process.

The resolution order of :func:`resolve_threads`: an explicit request, else the
``OMP_NUM_THREADS`` environment variable (the standard OpenMP setting, which torch also
reads), else 1. ``0`` means torch's own default (one thread per core).

Example:
    >>> import gradleak as gl
    >>> gl.threads.resolve_threads(2)
    2
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from gradleak.errors import ConfigError

__all__ = ["DEFAULT_THREADS", "resolve_threads", "use_threads"]

DEFAULT_THREADS = 1
ENV_VAR = "OMP_NUM_THREADS"


def resolve_threads(requested: int | None = None) -> int:
    """The thread count to use: ``requested``, else ``$OMP_NUM_THREADS``, else 1.

    Args:
        requested: an explicit count (``0``: torch's default, one per core), or None.

    Raises:
        ConfigError: ``requested`` or ``$OMP_NUM_THREADS`` is not a non-negative integer.
    """
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
            raise ConfigError(f"threads must be an integer >= 0, got {requested!r}")
        return requested
    env = os.environ.get(ENV_VAR, "").strip()
    if not env:
        return DEFAULT_THREADS
    if not env.isdigit() or int(env) < 1:
        raise ConfigError(f"${ENV_VAR}={env!r} is not a positive integer; fix or unset it")
    return int(env)


def use_threads(requested: int | None = None) -> int:
    """Sets torch's intra-op thread count from :func:`resolve_threads`; returns it.

    ``0`` leaves torch's current setting unchanged.
    """
    n = resolve_threads(requested)
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


@contextmanager
def threads_while(requested: int | None) -> Iterator[None]:
    """Uses ``requested`` torch threads (None: leave them) inside the block, then restores.

    Experiments use it so that a run's thread setting does not leak into the caller.
    """
    before = torch.get_num_threads()
    if requested is not None:
        use_threads(int(requested))
    try:
        yield
    finally:
        torch.set_num_threads(before)
