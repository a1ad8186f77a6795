"""Speed of the optimisation engine: iterations per second, peak memory and PSNR.

For the ``ig`` recipe (or ``--recipe``) at a fixed iteration budget, on LeNet, a small
ConvNet (width 16) and the seed's 4-layer MLP, with batch sizes 1 and 4 and 1 and 4
restarts, this prints one table row per setting:

* ``it/s``: optimisation iterations per second (each iteration steps every restart);
  ``restart-it/s`` multiplies by the number of restarts.
* ``it/s`` is timed after a 1-iteration warm-up attack (the first attack in a process pays
  seconds of one-off library initialisation).
* ``peak MiB``: the growth of the process' peak resident set size (``resource.getrusage``
  ``ru_maxrss``) from just before the warm-up to the end of the attack. Each setting runs
  in a fresh subprocess, so the number is that attack's own peak above the memory already
  in use after imports, model, data and the client update (tracemalloc cannot see torch's
  allocator, so it is not used).
* ``PSNR``: ``gradleak.evaluate`` on the reconstruction at that budget (labels shared with
  the server, so label recovery does not enter the timing).

Every run uses ``--threads`` torch threads (default 1: these small problems gain little from
more, and on a shared machine extra OpenMP threads slowed LeNet steps 10-100x). The default
budget (30 iterations) takes about four minutes on 2 shared CPU cores.

Usage:
    python benchmarks/engine_speed.py                    # the full grid, default budget
    python benchmarks/engine_speed.py --iterations 30 --models lenet --batch-sizes 1
    python benchmarks/engine_speed.py --json results.json
    python benchmarks/engine_speed.py --compile on --iterations 200   # torch.compile'd steps

``--compile`` is the engine's ``compile`` setting: ``auto`` (default) compiles only runs
long enough to repay the compile (not these short ones), ``on`` times the compiled steps
after a compiling warm-up, ``off`` forces eager.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

MODELS: dict[str, dict[str, Any]] = {
    "lenet": {},
    "convnet": {"width": 16},
    "mlp": {"depth": 4},
}


@dataclass(frozen=True)
class Setting:
    """One benchmark cell."""

    model: str
    batch_size: int
    restarts: int
    iterations: int
    recipe: str
    seed: int
    threads: int
    compile: str = "auto"


COMPILE: dict[str, bool | str] = {"auto": "auto", "on": True, "off": False}


def _maxrss_mib() -> float:
    # Linux reports kilobytes, macOS bytes
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def run_one(s: Setting) -> dict[str, Any]:
    """Runs one setting in this process and returns its measurements."""
    import torch

    import gradleak as gl

    if s.threads > 0:
        torch.set_num_threads(s.threads)
    images, labels = gl.data.load("sample", size=32, n=s.batch_size, seed=s.seed)
    model = gl.models.create(s.model, num_classes=10, in_shape=tuple(images.shape[1:]),
                             **MODELS[s.model])
    obs, truth = gl.simulate(model, images, labels, share_labels=True, seed=s.seed)
    torch.manual_seed(s.seed)
    before = _maxrss_mib()
    # warm-up: the first attack in a process pays one-off library initialisation (seconds)
    # (with --compile on it also compiles; the compiled objective is reused by the timed run)
    comp = COMPILE[s.compile]
    gl.reconstruct(obs, attack=s.recipe, iterations=1, restarts=s.restarts, seed=s.seed,
                   compile=comp)
    t0 = time.perf_counter()
    rec = gl.reconstruct(obs, attack=s.recipe, iterations=s.iterations, restarts=s.restarts,
                         seed=s.seed, compile=comp)
    wall = time.perf_counter() - t0
    peak = _maxrss_mib() - before
    scores = gl.evaluate(rec, truth)
    return {
        **asdict(s),
        "wall_s": wall,
        "it_per_s": s.iterations / wall,
        "restart_it_per_s": s.iterations * s.restarts / wall,
        "peak_rss_delta_mib": peak,
        "psnr": float(scores["psnr"]),
        "threads": torch.get_num_threads(),
        "compiled": bool(rec.extras.get("compiled")),
    }


def run_isolated(s: Setting) -> dict[str, Any]:
    """Runs one setting in a fresh Python process (clean peak-memory accounting)."""
    env = dict(os.environ)
    env.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "gradleak-mpl"))
    cmd = [sys.executable, __file__, "--one", json.dumps(asdict(s))]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["?"]
        return {**asdict(s), "error": tail[0]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(rows: list[dict[str, Any]]) -> str:
    """The results as a fixed-width text table."""
    head = (f"{'model':<8} {'batch':>5} {'restarts':>8} {'iters':>5} {'wall s':>7} "
            f"{'it/s':>7} {'restart-it/s':>12} {'peak MiB':>9} {'PSNR dB':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:<8} {r['batch_size']:>5} {r['restarts']:>8} "
                         f"{r['iterations']:>5}  error: {r['error']}")
            continue
        lines.append(
            f"{r['model']:<8} {r['batch_size']:>5} {r['restarts']:>8} {r['iterations']:>5} "
            f"{r['wall_s']:>7.1f} {r['it_per_s']:>7.1f} {r['restart_it_per_s']:>12.1f} "
            f"{r['peak_rss_delta_mib']:>9.1f} {r['psnr']:>8.2f}"
            f"{'  compiled' if r.get('compiled') else ''}"
        )
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    """Parses options, runs the grid and prints the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=30, help="budget per run (default 30)")
    p.add_argument("--models", default=",".join(MODELS), help="comma list (lenet,convnet,mlp)")
    p.add_argument("--batch-sizes", default="1,4", help="comma list (default 1,4)")
    p.add_argument("--restarts", default="1,4", help="comma list (default 1,4)")
    p.add_argument("--recipe", default="ig", help="attack recipe (default ig)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per run (default 1; 0: torch's default)")
    p.add_argument("--compile", choices=tuple(COMPILE), default="auto",
                   help="the engine's compile setting (auto: by run length; on: timed after "
                        "a compiling warm-up)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--in-process", action="store_true",
                   help="run every setting in this process (faster; peak memory then "
                        "counts only growth beyond earlier settings)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.one is not None:  # child mode: one setting, one JSON line on stdout
        print(json.dumps(run_one(Setting(**json.loads(args.one)))))
        return 0

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    settings = [
        Setting(m, b, r, args.iterations, args.recipe, args.seed, args.threads, args.compile)
        for m in models for b in _ints(args.batch_sizes) for r in _ints(args.restarts)
    ]
    where = "in-process" if args.in_process else "fresh process per run"
    print(f"engine speed: recipe {args.recipe!r}, {args.iterations} iterations per run, "
          f"{len(settings)} runs, {os.cpu_count()} CPU(s); peak MiB = growth of ru_maxrss "
          f"during the attack ({where})", flush=True)
    rows = []
    t0 = time.perf_counter()
    for s in settings:
        row = run_one(s) if args.in_process else run_isolated(s)
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; torch threads per run: "
          f"{next((r['threads'] for r in rows if 'threads' in r), '?')}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
