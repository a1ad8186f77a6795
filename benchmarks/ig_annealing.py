"""`ig` with its total-variation prior annealed over stages (``then``) against one stage.

Inverting Gradients' TV prior both guides the search and biases the result towards smooth
images. Annealing it -- a strong prior first, then weaker ones at a smaller step size, each
stage started from the previous one's result (the engine's ``then`` setting) -- keeps the
guidance and lets gradient matching set the details. Setting: DLG's LeNet (3x32x32, seeded
with the image seed), batch 1, no defense, labels not shared (``ig`` recovers them), one
bundled photo per seed (``gl.data.load(data, size=32, n=1, seed=s, unique_labels=True)``),
exactly as ``gradleak experiment defense-curves`` simulates its clients. One torch thread;
``cpu s`` is process CPU time for all seeds.

Hold-out protocol: the schedules were compared on ``--data holdout --seeds 100-109`` and the
chosen one (``annealed-3``) is reported on ``--data sample --seeds 0-4``.

Usage:
    python benchmarks/ig_annealing.py                                  # sample, seeds 0-4
    python benchmarks/ig_annealing.py --data holdout --seeds 100-109   # the calibration
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

import gradleak as gl
from gradleak.experiments.defense_curves.settings import ig_annealed

TV = {"tv": {"weight": 0.05, "space": "input"}}

#: name -> keyword overrides of ``ig`` (iterations in total: 2000, 2000, 3000)
SCHEDULES: dict[str, dict[str, Any]] = {
    "one-stage": {"iterations": 2000, "priors": TV},
    "annealed-2": {"iterations": 1000, "priors": TV,
                   "then": [{"iterations": 1000, "lr": 0.01, "priors.tv.weight": 0.005}]},
    "annealed-3": ig_annealed(),  # what ``defense-curves`` runs
}


def _seeds(text: str) -> list[int]:
    if "-" in text and "," not in text:
        lo, hi = (int(v) for v in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="sample")
    p.add_argument("--seeds", default="0-4", help="'0-4' or '0,1,2'")
    p.add_argument("--schedules", default=",".join(SCHEDULES),
                   help=f"comma-separated names from: {', '.join(SCHEDULES)}")
    a = p.parse_args()
    torch.set_num_threads(1)
    seeds = _seeds(a.seeds)
    print(f"ig, LeNet, batch 1, {a.data} photos, seeds {seeds}, one thread")
    print("| schedule | iterations | mean dB | min dB | per seed | cpu s |")
    print("|---|---|---|---|---|---|")
    for name in a.schedules.split(","):
        overrides = SCHEDULES[name]
        total = overrides["iterations"] + sum(t["iterations"] for t in overrides.get("then", []))
        scores, t0 = [], time.process_time()
        for seed in seeds:
            torch.manual_seed(seed)
            model = gl.models.create("lenet", num_classes=10, in_shape=(3, 32, 32))
            x, y = gl.data.load(a.data, size=32, n=1, seed=seed, unique_labels=True)
            obs, truth = gl.simulate(model, x, y, seed=seed)
            rec = gl.reconstruct(obs, attack="ig", seed=seed, compile=False,
                                 **{"restarts": 1, **overrides})
            scores.append(float(gl.evaluate(rec, truth)["psnr"]))
        print(f"| {name} | {total} | {sum(scores) / len(scores):.2f} | {min(scores):.2f} | "
              + " / ".join(f"{v:.2f}" for v in scores)
              + f" | {time.process_time() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
