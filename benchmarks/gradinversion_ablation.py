"""Issue #3's criterion: ``gradinversion`` vs ``ig`` on a BN ConvNet at batch 8, with ablation.

Runs the ``batch-discard`` experiment's ablation part (its own code path: the server's BN
ConvNet, width ``ablation_width`` = 8, with BN running statistics from earlier rounds on other
photos, 32x32 bundled photos (``ablation_size``), batch 8 with unique labels, FedSGD, client
in training mode, CIFAR-10 normalisation) at equal iterations and restarts for every variant,
over one batch per seed, and prints the table the experiment's page shows (mean PSNR over the
seeds' batches, per-seed PSNR, seconds per run). ``gradinversion`` runs with the experiment's
calibrated weights (``batch_discard.calibrated_gradinversion``, chosen on seeds 100 and 101;
evaluate on other seeds). About 6 minutes per variant and seed on one CPU core. The page
and ``results.json`` are written under ``--out``.

Usage::

    python benchmarks/gradinversion_ablation.py                        # 1000 its, seeds 0 1
    python benchmarks/gradinversion_ablation.py --iterations 2000 --seeds 0 1 2
    python benchmarks/gradinversion_ablation.py --quick                # seconds, smoke test

Equivalent CLI::

    gradleak experiment batch-discard --set parts=ablation --set iterations=1000 \\
        --set ablation_seeds=[0,1]

Single process; set ``OMP_NUM_THREADS`` / ``--threads`` to share a machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gradleak.experiments import run_experiment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=None, help="default 1000 (quick: 4)")
    ap.add_argument("--restarts", type=int, default=None, help="default 4 (quick: 2)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/gradinversion_ablation"))
    ap.add_argument("--eager", action="store_true", help="never compile (compile=False)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke-test settings")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings: dict[str, object] = {
        "parts": ["ablation"],
        "ablation_seeds": args.seeds,
        "threads": args.threads,
    }
    for key, full in (("iterations", 1000), ("restarts", 4)):  # quick keeps its own
        value = getattr(args, key)
        if value is not None or not args.quick:
            settings[key] = full if value is None else value
    if args.eager:
        settings["extra_overrides"] = {"ig": {"compile": False},
                                       "gradinversion": {"compile": False}}
    t0 = time.perf_counter()
    page = run_experiment("batch-discard", args.out, quick=args.quick, **settings)
    results = json.loads((args.out / "results.json").read_text())
    rows = results["ablation"]
    s = results["settings"]
    print(f"batch {s['ablation_batch']}, {s['iterations']} iterations, {s['restarts']} restarts, "
          f"ConvNet width {s['ablation_width']}, {s['ablation_size']}px, seeds {rows[0]['seeds']}")
    print("| variant | mean PSNR (dB) | per seed | delta vs full | SSIM | s/run |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for r in rows:
        per = ", ".join(f"{v:.2f}" for v in r["psnr_per_seed"])
        ssim = "" if r["ssim"] is None else f"{r['ssim']:.3f}"
        print(f"| {r['variant']} | {r['psnr']:.2f} | {per} | {r['delta_psnr_vs_full']:+.2f} | "
              f"{ssim} | {r['seconds']:.0f} |")
    print(f"total {time.perf_counter() - t0:.0f} s; page: {page}")


if __name__ == "__main__":
    main()
