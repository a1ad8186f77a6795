"""Generative priors against pixel-space attacks, at equal wall time, on held-out images.

For each offline domain (``digits``, ``faces``, ``patches``: the shipped 32 px priors were
trained on the domains' ``train`` split; the images attacked here come from the ``holdout``
split, which no prior saw), each server model (``lenet``; ``convnet_small``, 3 BN blocks) and
batch size, this runs ``ig`` (pixels + TV), ``gias`` (latent, then per-image generator
weights), ``gifd`` (latent, then feature layers) and ``ggl`` (CMA-ES over latents) with the
same wall-clock budget per attack and prints mean PSNR / SSIM / seconds over the seeds.

Equal wall time: each attack's iterations are set from timed probes of its stages
so that the run takes about ``--seconds`` of one core; the table reports the seconds actually
used. Time is the process' CPU time (one torch thread, so on an idle machine it equals the
wall time; on a shared machine it still measures each attack's own work). Labels
are shared with the server (as in the papers' comparisons), the client computes one FedSGD
gradient in training mode, optionally with a defense (``--defense prune:ratio=0.9``).
``--adaptive`` adds a row for ``ggl`` with its defense estimate.

Usage:
    python benchmarks/generative.py                       # digits + faces, LeNet, batch 1 and 4
    python benchmarks/generative.py --domains digits --models lenet --batch-sizes 4 --seeds 0,1,2
    python benchmarks/generative.py --defense prune:ratio=0.9 --adaptive
    python benchmarks/generative.py --quick               # seconds-long smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch

import gradleak as gl
from gradleak.cli_common import parse_defense

ATTACKS = ("ig", "gias", "gifd", "ggl")

#: every attack's settings apart from its budget (restarts and step sizes follow the papers'
#: code; chosen before any benchmark run, not tuned on these images)
SETTINGS: dict[str, dict[str, Any]] = {
    "ig": {"restarts": 2},
    "gias": {"restarts": 2},
    "gifd": {"restarts": 2},
    "ggl": {"population": 32},
    "ggl_adaptive": {"population": 32, "adaptive": True},
}


def _rate(probe: Callable[[dict[str, Any]], float], key: str, fixed: dict[str, Any],
          n: int = 30) -> float:
    """Seconds per unit of ``key``: the slope between probes of ``n`` and ``4 n`` units (so
    one-off setup is not counted), floored at a quarter of the longer probe's average (a
    difference of short probes is noisy on a loaded machine)."""
    probe({**fixed, key: 2})  # warm-up: a process' first call pays one-off setup
    t_short = probe({**fixed, key: n})
    t_long = probe({**fixed, key: 4 * n})
    return max((t_long - t_short) / (3 * n), 0.25 * t_long / (4 * n), 1e-4)


def _budget(attack: str, seconds: float, probe: Callable[[dict[str, Any]], float]
            ) -> dict[str, Any]:
    """Iteration settings that make ``attack`` take about ``seconds`` of CPU time.

    ``probe(settings)`` runs the attack with small settings and returns its CPU time.
    """
    if attack == "ig":
        return {"iterations": max(5, int(seconds / _rate(probe, "iterations", {})))}
    if attack.startswith("ggl"):
        return {"generations": max(5, int(seconds / _rate(probe, "generations", {})))}
    if attack == "gias":  # half the time on the latent, half on the weights
        lat = _rate(probe, "iterations", {"weight_iterations": 0})
        wts = _rate(probe, "weight_iterations", {"iterations": 5})
        return {"iterations": max(5, int(seconds / 2 / lat)),
                "weight_iterations": max(5, int(seconds / 2 / wts))}
    # gifd: the latent stage and every feature layer get the same iterations
    return {"iterations": max(5, int(seconds / _rate(probe, "iterations", {})))}


#: iteration settings per (attack, domain, model, batch): probed on the first seed only (the
#: cost of an iteration does not depend on the images)
_BUDGETS: dict[tuple[str, str, str, int], dict[str, Any]] = {}


def run_cell(domain: str, model_name: str, batch: int, seed: int, seconds: float,
             defense: str | None, attacks: list[str], prior_path: str | None = None,
             labels: str = "data") -> dict[str, dict[str, float]]:
    """Scores of every attack on one held-out batch."""
    prior = gl.generative.load(prior_path.format(domain=domain) if prior_path else domain)
    x, y = gl.data.load(domain, size=prior.image_size, n=batch, split="holdout", seed=seed,
                        unique_labels=False)
    torch.manual_seed(seed)
    model = gl.models.create(model_name, in_shape=tuple(x.shape[1:]), num_classes=10)
    spec = parse_defense(defense)
    y = torch.arange(batch) if labels == "distinct" else y.remainder(10)
    obs, truth = gl.simulate(model, x, y, share_labels=True, defense=spec, seed=seed)
    out: dict[str, dict[str, float]] = {}
    for name in attacks:
        attack = "ggl" if name.startswith("ggl") else name
        base = dict(SETTINGS[name])
        if attack != "ggl":
            base["compile"] = False  # equal time for the search itself, not for compiling
        if attack != "ig":
            base["generative_prior"] = prior

        def probe(extra: dict[str, Any], attack: str = attack, base: dict = base) -> float:
            t0 = time.process_time()
            gl.reconstruct(obs, attack=attack, seed=seed, **base, **extra)
            return time.process_time() - t0

        key = (name, domain, model_name, batch)
        if key not in _BUDGETS:
            _BUDGETS[key] = _budget(name, seconds, probe)
        extra = _BUDGETS[key]
        t0 = time.process_time()
        rec = gl.reconstruct(obs, attack=attack, seed=seed, **base, **extra)
        took = time.process_time() - t0
        scores = gl.evaluate(rec, truth)
        out[name] = {"psnr": float(scores["psnr"]), "ssim": float(scores["ssim"]),
                     "seconds": took}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--domains", default="digits,faces")
    p.add_argument("--models", default="lenet")
    p.add_argument("--batch-sizes", default="1,4")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--seconds", type=float, default=20.0, help="wall-time budget per attack")
    p.add_argument("--attacks", default=",".join(ATTACKS))
    p.add_argument("--defense", default=None, help="e.g. prune:ratio=0.9 or noise:sigma=0.01")
    p.add_argument("--adaptive", action="store_true", help="add ggl with its defense estimate")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--labels", choices=("data", "distinct"), default="data",
                   help="the domain's labels, or 0..B-1 (e.g. faces: the LFW subset names "
                        "nobody, so its labels are all 0 unless each face is its own identity)")
    p.add_argument("--prior", default=None,
                   help="prior file pattern, e.g. priors/{domain}.safetensors (default: shipped)")
    p.add_argument("--quick", action="store_true", help="1 seed, 2 s per attack")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    seeds = [0] if a.quick else [int(s) for s in a.seeds.split(",")]
    seconds = 2.0 if a.quick else a.seconds
    attacks = a.attacks.split(",") + (["ggl_adaptive"] if a.adaptive else [])
    rows = []
    header = (f"{'domain':8} {'model':14} {'B':>2} {'attack':13} {'PSNR dB':>8} {'SSIM':>6} "
              f"{'s':>6}  per-seed PSNR")
    print(f"defense: {a.defense or 'none'}; labels: {a.labels}; {seconds:.0f} s per attack; "
          f"seeds {seeds}")
    print(header)
    print("-" * len(header))
    for domain in a.domains.split(","):
        for model_name in a.models.split(","):
            for batch in [int(b) for b in a.batch_sizes.split(",")]:
                cells = [run_cell(domain, model_name, batch, s, seconds, a.defense, attacks,
                                  a.prior, a.labels)
                         for s in seeds]
                for name in attacks:
                    vals = [c[name] for c in cells]
                    mean = {k: sum(v[k] for v in vals) / len(vals) for k in vals[0]}
                    per = " ".join(f"{v['psnr']:.1f}" for v in vals)
                    print(f"{domain:8} {model_name:14} {batch:>2} {name:13} "
                          f"{mean['psnr']:8.2f} {mean['ssim']:6.3f} {mean['seconds']:6.1f}  {per}",
                          flush=True)
                    rows.append({"domain": domain, "model": model_name, "batch": batch,
                                 "attack": name, "defense": a.defense, **mean,
                                 "per_seed_psnr": [v["psnr"] for v in vals]})
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
