"""The thread trap: ``ig`` iterations per second with 1, 2 and torch's default CPU threads.

For LeNet (batch 1, 32 px) and the small BN ConvNet (``convnet_small``: 3 BN blocks, width
16; batch 8, 32 px), this times ``gl.reconstruct(obs, attack="ig")`` (labels shared, one
restart, eager: ``compile=False``) at each thread count and prints one row per model:
iterations per second (median of ``--repeats`` timed attacks, after a warm-up attack)
and the slow-down of each setting against one thread.

The settings are interleaved (1, 2, default, 1, 2, default, ...) so that changes in the
machine's load hit every column alike. "default" is the count torch picks at start-up (one
per core, or ``$OMP_NUM_THREADS``); this script is therefore run with ``OMP_NUM_THREADS``
unset. ``--extra 4`` adds an oversubscribed column.

Measured on a shared 2-core machine (torch's default is 2 there, so the "2" and "default"
columns are the same setting measured twice), seed 0, ``OMP_NUM_THREADS`` unset:

load average 10.8, 20 iterations, 3 repeats (the defaults)::

    | model (batch)     | 1 it/s | 2 it/s | default (2) it/s | 2 vs 1       | default vs 1 |
    | lenet (1)         |   35.2 |    1.1 |              2.2 | 32.0x slower | 16.0x slower |
    | convnet_small (8) |    7.5 |    0.4 |              0.5 | 16.8x slower | 16.3x slower |

load average 10.0, 10 iterations, 1 repeat::

    | lenet (1)         |   99.6 |    2.2 |              2.3 | 45.9x slower | 43.8x slower |
    | convnet_small (8) |   16.0 |    0.8 |              0.4 | 20.7x slower | 39.4x slower |

On a busy machine one thread is 16-46x faster for these models, which is why the CLI
defaults to one (:mod:`gradleak.threads`). The numbers move with the machine's load (the
first row's one-thread speed is 35 vs 100 it/s in the two runs); the ratio is what to read.
Not measured here: an idle many-core machine, where larger models may gain from threads.

Usage:
    env -u OMP_NUM_THREADS python benchmarks/threads.py
    env -u OMP_NUM_THREADS python benchmarks/threads.py --iterations 20 --repeats 3 --extra 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import torch

import gradleak as gl

MODELS: dict[str, dict[str, Any]] = {
    "lenet": {"batch_size": 1, "kwargs": {}},
    "convnet_small": {"batch_size": 8, "kwargs": {}},
}


def observation(model: str, seed: int) -> gl.Observation:
    """The client update attacked in every timing of ``model``."""
    spec = MODELS[model]
    images, labels = gl.data.load("sample", size=32, n=spec["batch_size"], seed=seed)
    net = gl.models.create(model, num_classes=10, seed=seed, **spec["kwargs"])
    return gl.simulate(net, images, labels, share_labels=True, seed=seed)[0]


def iterations_per_second(obs: gl.Observation, threads: int, iterations: int,
                          seed: int) -> float:
    """One timed ``ig`` attack at ``threads`` intra-op threads."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    gl.reconstruct(obs, attack="ig", iterations=iterations, restarts=1, seed=seed,
                   compile=False, snapshot_every=0)
    return iterations / (time.perf_counter() - t0)


def main() -> None:
    """Parses arguments, runs the grid and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--extra", type=int, nargs="*", default=[],
                        help="more thread counts to time (e.g. 4: oversubscribed)")
    args = parser.parse_args()
    default = torch.get_num_threads()
    columns = [("1", 1), ("2", 2), (f"default ({default})", default)]
    columns += [(str(n), n) for n in args.extra]
    print(f"cores: {os.cpu_count()}, torch default threads: {default}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
          f"load average: {os.getloadavg()[0]:.1f}, iterations {args.iterations}, "
          f"repeats {args.repeats}, seed {args.seed}")
    header = "| model (batch) | " + " | ".join(f"{c} it/s" for c, _ in columns)
    header += " | " + " | ".join(f"{c} vs 1" for c, _ in columns[1:]) + " |"
    print(header)
    print("|" + " --- |" * (1 + 2 * len(columns) - 1))
    for model in args.models:
        obs = observation(model, args.seed)
        iterations_per_second(obs, 1, 2, args.seed)  # warm-up: one-off initialisation
        runs: dict[str, list[float]] = {c: [] for c, _ in columns}
        for _ in range(args.repeats):
            for col, n in columns:
                runs[col].append(iterations_per_second(obs, n, args.iterations, args.seed))
        med = {c: statistics.median(v) for c, v in runs.items()}
        base = med["1"]
        cells = [f"{med[c]:.1f}" for c, _ in columns]
        cells += [f"{base / med[c]:.1f}x slower" if med[c] < base else
                  f"{med[c] / base:.1f}x faster" for c, _ in columns[1:]]
        print(f"| {model} ({MODELS[model]['batch_size']}) | " + " | ".join(cells) + " |")
    torch.set_num_threads(default)


if __name__ == "__main__":
    main()
