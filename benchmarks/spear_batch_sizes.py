"""SPEAR success rate and time against the batch size; CPA's PSNR for large batches.

SPEAR (Dimitrov et al., NeurIPS 2024) cells: a 2-layer ReLU MLP of width 1000
(``gl.models.create("mlp", depth=2, width=1000, seed=model_seed)``, torch's default
initialisation), FedSGD gradient, batch size shared, on the bundled photos (``sample`` then
``holdout``, 32 px RGB) and on digits (``gl.data.load("digits")``, 28 px grey); labels all
equal (class 0) or random (seeded); float32 and float64 models; one row per cell over the
model seeds. The success metric compares with the ground truth (evaluation, not the
attack): an image counts as exact when its Hungarian-matched PSNR exceeds 60 dB. The
attack's budget is deterministic (``max_rounds``); ``--max-seconds`` only caps runaway cells
and every capped run is counted in the ``capped`` column.

CPA (Kariyappa et al., ICML 2023) cells: the same MLP with width ``max(1000, 2 B)`` on
``patches`` (RGB 32 px crops of the photos behind the bundled set; the bundled photos only go
to 70 images, and upsampled 8x8 digits span only 64 dimensions), mean PSNR of the matched
images, next to a control (the same pipeline with a random orthogonal unmixing instead of
FastICA).

Usage::

    python benchmarks/spear_batch_sizes.py                                  # everything
    python benchmarks/spear_batch_sizes.py --batch-sizes 16 32 --dtypes float32
    python benchmarks/spear_batch_sizes.py --cpa-sizes 64 256 --no-spear
    python benchmarks/spear_batch_sizes.py --jsonl results.jsonl           # keep raw runs

Single process, one torch thread; every run is seeded.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from typing import Any

import torch

import gradleak as gl
from gradleak.attacks.analytic._common import flat_to_images, observed_gradients
from gradleak.attacks.analytic.cpa import unmix_with
from gradleak.metrics import match, psnr

SHAPES = {"photos": (3, 32, 32), "digits": (1, 28, 28), "patches": (3, 32, 32)}


def images(data: str, n: int, seed: int) -> torch.Tensor:
    """``n`` distinct images of ``data`` in [0, 1]."""
    if data == "digits":
        return gl.data.load("digits", size=28, n=n, seed=seed)[0]
    if data == "patches":
        return gl.data.load("patches", size=32, n=n, seed=seed)[0]
    x, _ = gl.data.load("sample", size=32, n=min(n, 40), seed=seed)
    if n > 40:
        x = torch.cat([x, gl.data.load("holdout", size=32, n=n - 40, seed=seed)[0]])
    return x


def labels(kind: str, n: int, seed: int) -> torch.Tensor:
    """All equal (class 0) or uniformly random over 10 classes (seeded)."""
    if kind == "equal":
        return torch.zeros(n, dtype=torch.long)
    return torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(1000 + seed))


def spear_run(data: str, b: int, kind: str, dtype: str, seed: int,
              args: argparse.Namespace) -> dict[str, Any]:
    """One SPEAR attack; exact images counted against the ground truth."""
    dt = getattr(torch, dtype)
    model = gl.models.create("mlp", depth=2, width=1000, in_shape=SHAPES[data],
                             seed=seed).to(dt)
    obs, truth = gl.simulate(model, images(data, b, seed).to(dt), labels(kind, b, seed))
    t0 = time.perf_counter()
    rec = gl.reconstruct(obs, attack="spear", seed=seed, max_seconds=args.max_seconds)
    seconds = time.perf_counter() - t0
    good = 0
    if rec.images.shape[0]:
        idx = match(rec.images, truth.images)
        good = int((psnr(rec.images.double(), truth.images[idx].double()) > 60).sum())
    return {"attack": "spear", "data": data, "b": b, "labels": kind, "dtype": dtype,
            "seed": seed, "exact": good, "self_check": rec.extras.get("recovered", 0),
            "directions": rec.extras["directions_found"], "seconds": seconds,
            "capped": rec.extras["stopped_by"] == "time"}


def cpa_run(data: str, b: int, seed: int) -> dict[str, Any]:
    """One CPA attack and its random-unmixing control (mean matched PSNR of each)."""
    model = gl.models.create("mlp", depth=2, width=max(1000, 2 * b), in_shape=SHAPES[data],
                             seed=seed)
    obs, truth = gl.simulate(model, images(data, b, seed), labels("random", b, seed))
    t0 = time.perf_counter()
    rec = gl.reconstruct(obs, attack="cpa", seed=seed)
    seconds = time.perf_counter() - t0
    score = gl.evaluate(rec, truth)["psnr"]
    grads = list(observed_gradients(obs).values())
    rot, _ = torch.linalg.qr(torch.randn(b, b, dtype=torch.float64,
                                         generator=torch.Generator().manual_seed(seed)))
    ctrl = flat_to_images(unmix_with(grads[0], grads[1], rot), obs).clamp(0, 1).float()
    control = gl.evaluate(gl.Reconstruction(ctrl, None, attack="control", config={}),
                          truth)["psnr"]
    return {"attack": "cpa", "data": data, "b": b, "seed": seed, "psnr": score,
            "control_psnr": control, "seconds": seconds,
            "converged": rec.extras["ica_converged"]}


def print_tables(rows: list[dict[str, Any]]) -> None:
    """Markdown tables: SPEAR per cell over seeds, then CPA."""
    cells: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["attack"] == "spear":
            cells[(r["data"], r["b"], r["labels"], r["dtype"])].append(r)
    if cells:
        print("\n| data | B | labels | dtype | seeds | exact images | runs all exact | "
              "mean s | max s | capped |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for key in sorted(cells, key=lambda k: (k[0], k[1], k[2], k[3])):
            rs = cells[key]
            b = key[1]
            exact = sum(r["exact"] for r in rs) / (b * len(rs))
            full = sum(r["exact"] == b for r in rs)
            secs = [r["seconds"] for r in rs]
            print(f"| {key[0]} | {b} | {key[2]} | {key[3]} | {len(rs)} | {exact:.1%} | "
                  f"{full}/{len(rs)} | {sum(secs) / len(secs):.1f} | {max(secs):.1f} | "
                  f"{sum(r['capped'] for r in rs)} |")
    cpa = [r for r in rows if r["attack"] == "cpa"]
    if cpa:
        print("\n| data | B | seeds | CPA PSNR (dB) | control PSNR (dB) | mean s |")
        print("|---|---|---|---|---|---|")
        groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for r in cpa:
            groups[(r["data"], r["b"])].append(r)
        for (data, b), rs in sorted(groups.items()):
            n = len(rs)
            print(f"| {data} | {b} | {n} | {sum(r['psnr'] for r in rs) / n:.2f} | "
                  f"{sum(r['control_psnr'] for r in rs) / n:.2f} | "
                  f"{sum(r['seconds'] for r in rs) / n:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 24, 32, 50])
    parser.add_argument("--data", nargs="+", default=["photos", "digits"])
    parser.add_argument("--labels", nargs="+", default=["equal", "random"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="safety cap per SPEAR run (capped runs are counted)")
    parser.add_argument("--cpa-sizes", type=int, nargs="*", default=[64, 256, 1024])
    parser.add_argument("--cpa-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--cpa-data", default="patches",
                        help="patches (RGB crops, up to 1,400) or digits (8x8 upsampled: "
                             "their span has only 64 dimensions, so ICA cannot go past B=64)")
    parser.add_argument("--no-spear", action="store_true")
    parser.add_argument("--jsonl", default=None, help="append every run to this file")
    parser.add_argument("--table-from", default=None, help="only print the tables of a jsonl")
    args = parser.parse_args()
    if args.table_from:
        with open(args.table_from) as fh:
            print_tables([json.loads(line) for line in fh if line.strip()])
        return
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []

    def keep(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    if not args.no_spear:
        for dtype in args.dtypes:
            for b in args.batch_sizes:
                for data in args.data:
                    for kind in args.labels:
                        for seed in args.seeds:
                            keep(spear_run(data, b, kind, dtype, seed, args))
    for b in args.cpa_sizes:
        for seed in args.cpa_seeds:
            keep(cpa_run(args.cpa_data, b, seed))
    print_tables(rows)


if __name__ == "__main__":
    main()
