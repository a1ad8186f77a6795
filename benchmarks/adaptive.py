"""Adaptive vs plain gradient matching under update defenses (``adaptive=True``).

An adaptive attacker applies the declared defense's surrogate (:mod:`gradleak.defenses.
adaptive`: the candidate's own top-k mask for pruning, a straight-through sign for sign
compression, clipping, ...) to every simulated update before matching; the plain attack
matches the raw simulated update against the defended one. Same seeds, same budget, LeNet,
one bundled photo per seed (32 px), labels shared; prints mean and per-seed PSNR.

Usage:
    python benchmarks/adaptive.py                          # prune 0.9 and sign, seeds 0-2
    python benchmarks/adaptive.py --defenses prune:ratio=0.99 --iterations 4000
"""

from __future__ import annotations

import argparse

import torch

import gradleak as gl
from gradleak.cli_common import parse_defense


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--defenses", default="prune:ratio=0.9;sign", help="';'-separated specs")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--attack", default="ig")
    a = p.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in a.seeds.split(",")]
    defenses = [d for d in a.defenses.split(";") if d]
    print(f"{a.attack}, {a.iterations} iterations, LeNet, batch 1, seeds {seeds}")
    print(f"{'defense':18} {'plain dB':>9} {'adaptive dB':>12}  per-seed plain | adaptive")
    for text in defenses:
        plain, adaptive = [], []
        for seed in seeds:
            torch.manual_seed(seed)
            model = gl.models.create("lenet", in_shape=(3, 32, 32))
            x, y = gl.data.load("sample", size=32, n=1, seed=seed)
            obs, truth = gl.simulate(model, x, y, share_labels=True, defense=parse_defense(text),
                                     seed=seed)
            for flag, out in ((False, plain), (True, adaptive)):
                rec = gl.reconstruct(obs, attack=a.attack, iterations=a.iterations,
                                     adaptive=flag, seed=seed)
                out.append(float(gl.evaluate(rec, truth)["psnr"]))
        print(f"{text:18} {sum(plain) / len(plain):9.2f} {sum(adaptive) / len(adaptive):12.2f}  "
              + " ".join(f"{v:.1f}" for v in plain) + " | "
              + " ".join(f"{v:.1f}" for v in adaptive), flush=True)


if __name__ == "__main__":
    main()
