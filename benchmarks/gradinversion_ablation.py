"""Issue #3's criterion: ``gradinversion`` vs ``ig`` on a BN ConvNet at batch 8, with ablation.

Runs the ``batch-discard`` experiment's ablation part (its own code path: the server's BN
ConvNet, ``ablation_model`` = ``convnet_small`` of width 16 by default, with BN running
statistics from earlier rounds on other photos, 16x16 bundled photos (``ablation_size``),
batch 8 with unique labels, FedSGD, client in training mode, CIFAR-10 normalisation) at
equal iterations and restarts for every variant, over one batch per seed, and prints the
table the experiment's page shows (mean PSNR over the seeds' batches, per-seed PSNR, seconds
per run). ``gradinversion`` and the tuned ``ig`` row run with the experiment's calibrated
weights for that model (``batch_discard.calibrated_gradinversion`` / ``calibrated_ig``,
chosen on seeds 100 and 101; evaluate on other seeds). About 25 s per variant and seed on
one CPU core (IG's 8-block ConvNet, ``--model convnet --width 8``: about 2 minutes). The page
and ``results.json`` are written under ``--out``.

Usage::

    python benchmarks/gradinversion_ablation.py --seeds 0 1 2 3       # 1000 its, 4 restarts
    python benchmarks/gradinversion_ablation.py --model convnet --width 8 --seeds 0 1 2 3
    python benchmarks/gradinversion_ablation.py --quick                # seconds, smoke test
    python benchmarks/gradinversion_ablation.py --device cuda --model convnet --width 64 \
        --size 32 --jobs 4 --seeds 0 1 2 3      # one process per (variant, seed) on a GPU

Equivalent CLI (one process)::

    gradleak experiment batch-discard --set parts=ablation --set iterations=1000 \
        --set ablation_seeds=[0,1,2,3]

With ``--jobs N`` every (variant, seed) pair runs in its own process, N at a time
(``gradinversion`` and ``ig`` first), and the per-seed results are merged into one table;
the per-job pages stay under ``--out/jobs``. Set ``OMP_NUM_THREADS`` / ``--threads`` to share
a machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from gradleak.experiments import run_experiment
from gradleak.experiments.batch_discard import (
    GRAY,
    ablation_runs,
    ablation_table,
    resolve_settings,
)


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=None, help="default 1000 (quick: 4)")
    ap.add_argument("--restarts", type=int, default=None, help="default 4 (quick: 2)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/gradinversion_ablation"))
    ap.add_argument("--eager", action="store_true", help="never compile (compile=False)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke-test settings")
    ap.add_argument("--device", default="cpu", help="where client and attacks run (e.g. cuda)")
    ap.add_argument("--model", default=None, help="convnet_small (default) or convnet")
    ap.add_argument("--width", type=int, default=None, help="ConvNet width (default 16)")
    ap.add_argument("--size", type=int, default=None, help="image side (default 16)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="any other experiment setting, e.g. --set ablation_batch=4")
    ap.add_argument("--jobs", type=int, default=1,
                    help="run each (variant, seed) in its own process, this many at a time")
    return ap.parse_args()


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "parts": ["ablation"],
        "ablation_seeds": args.seeds,
        "threads": args.threads,
        "device": args.device,
    }
    for key, full in (("iterations", 1000), ("restarts", 4)):  # quick keeps its own
        value = getattr(args, key)
        if value is not None or not args.quick:
            settings[key] = full if value is None else value
    for key, value in (("ablation_width", args.width), ("ablation_size", args.size),
                       ("ablation_model", args.model)):
        if value is not None:
            settings[key] = value
    if args.eager:
        settings["extra_overrides"] = {"ig": {"compile": False},
                                       "gradinversion": {"compile": False}}
    for item in args.set:
        key, _, raw = item.partition("=")
        settings[key] = json.loads(raw)
    return settings


def _parallel(args: argparse.Namespace, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs every (variant, seed) in its own process; returns the merged table's rows."""
    labels = [label for label, _, _ in ablation_runs(resolve_settings(args.quick, settings))]
    if settings.get("ablation_variants"):
        labels = [label for label in labels if label in settings["ablation_variants"]]
    first = {labels[0], *(label for label in labels if label.startswith("ig"))}
    order = sorted(((label, sd) for label in labels for sd in args.seeds),
                   key=lambda job: (job[0] not in first, labels.index(job[0]), job[1]))
    passthrough = list(sys.argv[1:])
    for flag in ("--jobs", "--seeds", "--out"):  # replaced per job
        while flag in passthrough:
            i = passthrough.index(flag)
            j = i + 1
            while j < len(passthrough) and not passthrough[j].startswith("--"):
                j += 1
            del passthrough[i:j]

    def job(k: int) -> Path:
        label, sd = order[k]
        out = args.out / "jobs" / f"v{labels.index(label)}_s{sd}"
        out.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, __file__, *passthrough, "--seeds", str(sd), "--out", str(out),
               "--set", f"ablation_variants={json.dumps([label])}"]
        with open(out / "log.txt", "w") as log:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
        print(f"done: {label}, seed {sd} (rc {rc})", flush=True)
        return out

    with ThreadPoolExecutor(args.jobs) as pool:
        outs = list(pool.map(job, range(len(order))))
    per_run: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    gray: dict[int, dict[str, Any]] = {}
    for out in outs:
        path = out / "results.json"
        if not path.exists():
            print(f"missing {path}; see {out / 'log.txt'}")
            continue
        for row in json.loads(path.read_text())["ablation"]:
            for r in row["per_seed"]:
                if row["variant"] == GRAY:
                    gray[r["seed"]] = r
                else:
                    per_run[row["variant"]].append(r)
    per_run = {k: v for k, v in per_run.items() if v}
    rows = ablation_table({**per_run, GRAY: list(gray.values())})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(
        {"settings": settings, "ablation": rows}, indent=2, default=str))
    return rows


def _print(rows: list[dict[str, Any]], s: dict[str, Any]) -> None:
    print(f"batch {s['ablation_batch']}, {s['iterations']} iterations, {s['restarts']} restarts, "
          f"{s['ablation_model']} width {s['ablation_width']}, {s['ablation_size']}px, "
          f"{s['bn_mode']} BN, device {s['device']}, "
          f"seeds {rows[0]['seeds']}")
    print("| variant | mean PSNR (dB) | per seed | delta vs full | SSIM | s/run |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for r in rows:
        per = ", ".join(f"{v:.2f}" for v in r["psnr_per_seed"])
        ssim = "" if r["ssim"] is None else f"{r['ssim']:.3f}"
        delta = "" if r["delta_psnr_vs_full"] is None else f"{r['delta_psnr_vs_full']:+.2f}"
        print(f"| {r['variant']} | {r['psnr']:.2f} | {per} | {delta} | {ssim} | "
              f"{r['seconds']:.0f} |")


def main() -> None:
    args = _args()
    torch.set_num_threads(args.threads)
    settings = _settings(args)
    t0 = time.perf_counter()
    full = resolve_settings(args.quick, settings).__dict__
    if args.jobs > 1:
        _print(_parallel(args, settings), full)
        print(f"total {time.perf_counter() - t0:.0f} s; per-job pages under {args.out / 'jobs'}")
        return
    page = run_experiment("batch-discard", args.out, quick=args.quick, **settings)
    results = json.loads((args.out / "results.json").read_text())
    _print(results["ablation"], full)
    print(f"total {time.perf_counter() - t0:.0f} s; page: {page}")


if __name__ == "__main__":
    main()
