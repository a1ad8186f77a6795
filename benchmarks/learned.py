"""Learned inversion (``lti``) against the mean image and ``ig`` at equal time, on digits.

Learning to Invert (Wu, Chen, Guo & Weinberger, UAI 2023, Table 1) on this project's
offline data: the target is DLG's LeNet (``lenet``, 1x32x32 inputs, seed 0), the attacker's
auxiliary data is the ``digits`` train split, and every number is measured on the ``digits``
holdout split (first ``--val`` images: per-epoch validation during training, never used to
pick anything; the next images: the reported test set). For batch sizes 1 and 4 and the
client defenses none, sign compression (``sign``, if registered) and 99% pruning
(``prune:ratio=0.99``) it trains one inverter per head (``mlp``: the paper's; ``rows``: the
gradient-shaped head; ``units``: the batch-aware per-label head, labels recovered with iLRG)
*for that defense*, then reports per row (a head whose labels cannot be recovered under a
defense is skipped with a note):

* ``PSNR`` / ``SSIM``: mean over the test observations (``gl.evaluate``, Hungarian-matched),
  ``+-`` one standard deviation over images;
* ``train s``: CPU seconds of training (one torch thread); ``infer ms``: one inversion;
* ``mean image``: the mean auxiliary image for every client image (the no-information
  baseline);
* ``ig``: Inverting Gradients with its defaults (labels recovered, none shared) given, per
  observation, as many CPU seconds as training the ``mlp`` inverter took (capped by
  ``--ig-seconds``): the iteration count comes from timed 10- and 40-iteration runs (per
  iteration cost and fixed setup cost). Only the first ``--ig-obs`` test observations (it is
  slow); ``infer ms`` is the CPU time ig actually used per observation.

Trained inverters are cached in ``--cache`` (safetensors), so a rerun only evaluates.

Usage:
    python benchmarks/learned.py                       # the full table (tens of minutes)
    python benchmarks/learned.py --quick               # tiny budgets, checks the plumbing
    python benchmarks/learned.py --batch-sizes 1 --defenses none --json out.json
    python benchmarks/learned.py --heads units --head-set units:epochs=64 \
        units:groups_per_step=8 --batch-sizes 4 --defenses none    # per-head settings
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

import gradleak as gl
from gradleak.errors import ObservationError

DEFENSES = {"none": None, "sign": {"name": "sign"}, "prune99": {"name": "prune", "ratio": 0.99}}


def scores(rec: gl.Reconstruction, truth: gl.GroundTruth) -> list[tuple[float, float]]:
    """Per-image (PSNR, SSIM) after matching."""
    s = gl.evaluate(rec, truth)
    return [(float(p["psnr"]), float(p["ssim"])) for p in s["per_image"]]


def summarise(name: str, per_image: list[tuple[float, float]], **cols: Any) -> dict[str, Any]:
    psnr = torch.tensor([p for p, _ in per_image])
    ssim = torch.tensor([s for _, s in per_image])
    return {"attack": name, "PSNR": float(psnr.mean()), "PSNR sd": float(psnr.std()),
            "SSIM": float(ssim.mean()), "images": len(per_image), **cols}


def head_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``HEAD:KEY=VALUE`` items (``--head-set units:epochs=32``) -> per-head settings."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        head, _, kv = item.partition(":")
        key, _, value = kv.partition("=")
        if not head or not key or not value:
            raise SystemExit(f"--head-set wants HEAD:KEY=VALUE, got {item!r}")
        out.setdefault(head, {})[key] = json.loads(value)
    return out


def train_or_load(model: torch.nn.Module, head: str, batch: int, defense: Any,
                  args: argparse.Namespace, aux: Any, val: Any, tag: str) -> gl.learned.Inverter:
    extra = head_overrides(args.head_set).get(head, {})
    suffix = "".join(f"-{k}{v}" for k, v in sorted(extra.items()))
    path = Path(args.cache) / f"{tag}-{head}-b{batch}{suffix}.safetensors"
    settings = {"epochs": args.epochs, "hidden": args.hidden, "seed": args.seed,
                "groups_per_step": args.groups_per_step, **extra}
    if path.is_file():
        inv = gl.learned.load(path, model=model)
        if inv.training.get("epochs_done") == settings["epochs"]:
            return inv
    t0 = time.time()
    inv = gl.learned.train(model, aux, val=val, batch_size=batch, defense=defense, head=head,
                           checkpoint=str(path), resume=True, **settings)  # type: ignore[arg-type]
    last = inv.training["history"][-1]
    print(f"  trained {tag} {head} B={batch}: val PSNR {last['val_psnr']:.2f} dB, "
          f"{inv.training['train_cpu_seconds']:.0f} CPU s ({time.time() - t0:.0f} s wall)",
          flush=True)
    return inv


def ig_row(obs_list: list[tuple[gl.Observation, gl.GroundTruth]], budget: float,
           seed: int) -> dict[str, Any]:
    def cpu(iterations: int) -> float:
        c0 = time.process_time()
        gl.reconstruct(obs_list[0][0], attack="ig", iterations=iterations, seed=seed)
        return time.process_time() - c0

    cpu(2)  # warm-up (one-off library initialisation)
    short, long = cpu(10), cpu(40)
    per_iter = max((long - short) / 30, 1e-5)
    setup = max(short - 10 * per_iter, 0.0)
    iters = max(10, int((budget - setup) / per_iter))
    per_image: list[tuple[float, float]] = []
    spent = 0.0
    for obs, truth in obs_list:
        c0 = time.process_time()
        rec = gl.reconstruct(obs, attack="ig", iterations=iters, seed=seed)
        spent += time.process_time() - c0
        per_image += scores(rec, truth)
    return summarise("ig", per_image, **{"train s": None,
                                         "infer ms": 1000 * spent / len(obs_list),
                                         "ig iterations": iters})


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    model = gl.models.create("lenet", in_shape=(1, args.size, args.size), seed=0)
    aux = gl.data.load("digits", size=args.size, n=None, split="train")
    hold = gl.data.load("digits", size=args.size, n=None, split="holdout")
    val = (hold[0][: args.val], hold[1][: args.val])
    test_x, test_y = hold[0][args.val:], hold[1][args.val:]
    mean_image = aux[0].mean(0, keepdim=True)
    rows: list[dict[str, Any]] = []
    for batch in args.batch_sizes:
        for tag in args.defenses:
            spec = DEFENSES[tag]
            if spec is not None and spec["name"] not in gl.defenses.available():
                print(f"skipping defense {tag!r}: not registered in this checkout", flush=True)
                continue
            n_obs = min(args.obs, len(test_x) // batch)
            observed = []
            for i in range(n_obs):
                x = test_x[i * batch:(i + 1) * batch]
                y = test_y[i * batch:(i + 1) * batch]
                observed.append(gl.simulate(model, x, y, defense=spec, seed=args.seed + i))
            setting = {"B": batch, "defense": tag}
            first = len(rows)
            train_cpu = None
            for head in args.heads:
                inv = train_or_load(model, head, batch, spec, args, aux, val, tag)
                per_image, ms = [], []
                try:
                    for obs, truth in observed:
                        rec = gl.reconstruct(obs, attack="lti", inverter=inv)
                        ms.append(rec.extras["inference_ms"])
                        per_image += scores(rec, truth)
                except ObservationError as exc:  # labels not recoverable
                    print(f"  lti-{head} B={batch} {tag}: {exc}", flush=True)
                    continue
                cpu = inv.training.get("train_cpu_seconds")
                train_cpu = cpu if head == "mlp" or train_cpu is None else train_cpu
                rows.append({**setting, **summarise(f"lti-{head}", per_image, **{
                    "train s": cpu, "infer ms": sum(ms) / len(ms)})})
            mean_scores: list[tuple[float, float]] = []
            for _obs, truth in observed:
                rec = gl.Reconstruction(images=mean_image.expand(batch, -1, -1, -1).clone(),
                                        labels=None, attack="mean-image", config={})
                mean_scores += scores(rec, truth)
            rows.append({**setting, **summarise("mean image", mean_scores,
                                                **{"train s": None, "infer ms": 0.0})})
            if args.ig_obs > 0:
                budget = min(float(train_cpu or args.ig_seconds), args.ig_seconds)
                rows.append({**setting, **ig_row(observed[: args.ig_obs], budget, args.seed)})
            print(table(rows[first:]), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = "| B | defense | attack | PSNR (dB) | SSIM | images | train CPU s | infer ms |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        train = "-" if r.get("train s") is None else f"{r['train s']:.0f}"
        extra = f" ({r['ig iterations']} it)" if "ig iterations" in r else ""
        lines.append(f"| {r['B']} | {r['defense']} | {r['attack']}{extra} | {r['PSNR']:.2f} "
                     f"+- {r['PSNR sd']:.2f} | {r['SSIM']:.3f} | {r['images']} | {train} | "
                     f"{r['infer ms']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    p.add_argument("--defenses", nargs="+", default=list(DEFENSES), choices=list(DEFENSES))
    p.add_argument("--heads", nargs="+", default=["mlp", "rows", "units"])
    p.add_argument("--head-set", nargs="*", default=[], metavar="HEAD:KEY=VALUE",
                   help="per-head training settings, e.g. units:epochs=32 units:lr=0.001")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--hidden", type=int, default=1000)
    p.add_argument("--groups-per-step", type=int, default=32)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--val", type=int, default=160, help="holdout images used for validation")
    p.add_argument("--obs", type=int, default=32, help="test observations per setting")
    p.add_argument("--ig-obs", type=int, default=4, help="observations attacked by ig")
    p.add_argument("--ig-seconds", type=float, default=120.0, help="cap of ig's CPU budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default="runs/learned-bench")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="tiny budgets (plumbing check)")
    args = p.parse_args()
    if args.quick:
        args.epochs, args.hidden, args.obs, args.ig_obs, args.ig_seconds = 1, 64, 4, 1, 2.0
        args.cache = str(Path(args.cache) / "quick")
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows = run(args)
    per_head = f", per head {' '.join(args.head_set)}" if args.head_set else ""
    print(f"\n## lti on digits / LeNet (seed {args.seed}, {args.epochs} epochs, hidden "
          f"{args.hidden}{per_head}; {time.time() - t0:.0f} s)\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
