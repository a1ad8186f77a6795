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

CPA (Kariyappa et al., ICML 2023) cells: the same MLP with width ``max(1000, 2 B)`` and
random labels on ``crops`` (:func:`photo_crops`: random crops at 10-50% scale, flips and
channel orders of 18 offline photos; ``--cpa-size`` px RGB), mean matched PSNR / SSIM and the
share of images above 20 dB, for the variants of :data:`CPA_VARIANTS` (the paper's raw-pixel
ICA, the paper's prior refinement, ICA on image gradients) next to a control (the same
pipeline with a random orthogonal unmixing instead of ICA). FastICA runs that hit
``--cpa-max-iter`` are starred.

Usage::

    python benchmarks/spear_batch_sizes.py                                  # everything
    python benchmarks/spear_batch_sizes.py --batch-sizes 16 32 --dtypes float32
    python benchmarks/spear_batch_sizes.py --cpa-sizes 64 256 --no-spear
    python benchmarks/spear_batch_sizes.py --no-spear --cpa-sizes 1024 --cpa-size 64 \
        --cpa-variants gradient raw --cpa-max-iter 100
    python benchmarks/spear_batch_sizes.py --jsonl results.jsonl           # keep raw runs

Single process, one torch thread; every run is seeded.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
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


#: photos of the CPA pool beyond the ten behind the bundled set (skimage's data folder).
EXTRA_PHOTOS = ("motorcycle_left.png", "coins.png", "moon.png", "brick.png", "grass.png",
                "gravel.png", "clock_motion.png", "cell.png", "page.png")


def photo_crops(n: int, size: int, seed: int) -> torch.Tensor:
    """``n`` RGB crops of 18 offline photos: random position and scale, flips, channel order.

    The ten photos behind the bundled set plus :data:`EXTRA_PHOTOS`; each crop picks a photo
    uniformly, a square side uniform in 10-50% of its shorter side at a random position, a
    horizontal flip with probability 1/2 and one of the six channel orders (grey photos stay
    grey), resized to ``size`` (Lanczos). Seeded; no crop is repeated in practice.
    """
    from PIL import Image

    from gradleak.data.base import pil_to_tensor
    from gradleak.data.sources import SOURCES, SourcePhoto, crop

    photos = [src.open() for src in SOURCES.values()]
    photos += [SourcePhoto("skimage", f, f, "", "").open() for f in EXTRA_PHOTOS]
    rng = np.random.default_rng(5000 + seed)
    out = []
    for _ in range(n):
        img = photos[int(rng.integers(len(photos)))]
        short = min(img.size)
        side = max(8, int(rng.uniform(0.1, 0.5) * short))
        x0 = int(rng.integers(img.size[0] - side + 1))
        y0 = int(rng.integers(img.size[1] - side + 1))
        patch = crop(img, (x0, y0, side), size)
        if rng.random() < 0.5:
            patch = patch.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.append(pil_to_tensor(patch)[torch.from_numpy(rng.permutation(3))])
    return torch.stack(out)


def cpa_images(data: str, b: int, size: int, seed: int) -> torch.Tensor:
    """``b`` images for CPA: ``crops`` (:func:`photo_crops`) or an offline domain."""
    if data == "crops":
        return photo_crops(b, size, seed)
    return gl.data.load(data, size=size, n=b, seed=seed, channels=3)[0]


def cpa_control(obs: gl.Observation, truth: gl.GroundTruth, b: int, seed: int) -> dict:
    """The same pipeline with a random orthogonal unmixing instead of ICA (the control)."""
    grads = list(observed_gradients(obs).values())
    rot, _ = torch.linalg.qr(torch.randn(b, b, dtype=torch.float64,
                                         generator=torch.Generator().manual_seed(seed)))
    ctrl = flat_to_images(unmix_with(grads[0], grads[1], rot), obs).clamp(0, 1).float()
    return gl.evaluate(gl.Reconstruction(ctrl, None, attack="control", config={}), truth)


def over20(score: Any) -> float:
    """Share of the batch's images reconstructed above 20 dB (matched PSNR)."""
    return sum(p["psnr"] > 20 for p in score["per_image"]) / len(score["per_image"])


def cpa_run(data: str, b: int, size: int, seed: int, variants: dict[str, dict[str, Any]],
            max_iter: int) -> Iterator[dict[str, Any]]:
    """CPA variants and the random-unmixing control on one batch (matched PSNR / SSIM)."""
    model = gl.models.create("mlp", depth=2, width=max(1000, 2 * b), in_shape=(3, size, size),
                             seed=seed)
    obs, truth = gl.simulate(model, cpa_images(data, b, size, seed), labels("random", b, seed))
    base = {"attack": "cpa", "data": data, "b": b, "size": size, "seed": seed}
    score = cpa_control(obs, truth, b, seed)
    yield {**base, "variant": "control", "psnr": score["psnr"], "ssim": score["ssim"],
           "over20": over20(score), "seconds": 0.0, "converged": True, "ica_iterations": 0}
    for name, overrides in variants.items():
        t0 = time.perf_counter()
        rec = gl.reconstruct(obs, attack="cpa", seed=seed, max_iter=max_iter, **overrides)
        seconds = time.perf_counter() - t0
        score = gl.evaluate(rec, truth)
        yield {**base, "variant": name, "psnr": score["psnr"], "ssim": score["ssim"],
               "over20": over20(score), "seconds": seconds,
               "converged": rec.extras["ica_converged"],
               "ica_iterations": rec.extras["ica_iterations"]}


#: CPA variants of the table: the paper's raw-pixel ICA, with the paper's prior refinement,
#: and the ICA of innovations (image gradients), with and without the refinement.
CPA_VARIANTS: dict[str, dict[str, Any]] = {
    "raw": {"filter": "none"},
    "raw+prior": {"filter": "none", "refine_steps": 300},
    "gradient": {"filter": "gradient"},
    "gradient+prior": {"filter": "gradient", "refine_steps": 300},
}


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
        print("\n| data | px | B | variant | seeds | PSNR dB | SSIM | > 20 dB | per seed PSNR | "
              "mean s | FastICA iters |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for r in cpa:
            groups[(r["data"], r["size"], r["b"], r["variant"])].append(r)
        order = ["control", *CPA_VARIANTS]
        for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], order.index(k[3])
                                                 if k[3] in order else 99, k[3])):
            rs = sorted(groups[key], key=lambda r: r["seed"])
            n = len(rs)
            per = " ".join(f"{r['psnr']:.1f}" for r in rs)
            its = " ".join(f"{r['ica_iterations']}{'' if r['converged'] else '*'}" for r in rs)
            print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {n} | "
                  f"{sum(r['psnr'] for r in rs) / n:.2f} | {sum(r['ssim'] for r in rs) / n:.3f} "
                  f"| {sum(r['over20'] for r in rs) / n:.0%} | {per} | "
                  f"{sum(r['seconds'] for r in rs) / n:.1f} | "
                  f"{its if key[3] != 'control' else '-'} |")


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
    parser.add_argument("--cpa-data", default="crops",
                        help="crops (photo_crops: 18 offline photos, random crops, flips, "
                             "channel orders) or an offline domain such as patches")
    parser.add_argument("--cpa-size", type=int, nargs="+", default=[32],
                        help="image side(s) for CPA (pixels per image = 3 side^2)")
    parser.add_argument("--cpa-variants", nargs="+", default=list(CPA_VARIANTS),
                        choices=list(CPA_VARIANTS))
    parser.add_argument("--cpa-max-iter", type=int, default=1000,
                        help="FastICA iterations at most (unconverged runs are starred)")
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
    variants = {k: CPA_VARIANTS[k] for k in args.cpa_variants}
    for size in args.cpa_size:
        for b in args.cpa_sizes:
            for seed in args.cpa_seeds:
                for row in cpa_run(args.cpa_data, b, size, seed, variants, args.cpa_max_iter):
                    keep(row)
    print_tables(rows)


if __name__ == "__main__":
    main()
