"""How well each generative prior represents held-out images of its domain.

For held-out images (the ``holdout`` split of each offline domain, never used in training),
optimise the latent (Adam, cosine-decayed lr, several random starts, best kept) to minimise
the MSE to the image, and report the PSNR of the projection: a latent-space attack (GIAS
stage 1, GGL) cannot do better than this with the prior. Baseline: the PSNR of the train
split's mean image (what a prior that knows only the average would give).

Usage:
    python benchmarks/prior_quality.py                      # the shipped priors
    python benchmarks/prior_quality.py --priors /tmp/priors/*.safetensors   # candidates

The domain of a prior file is read from its metadata (``train`` spec) or its name
(``<domain>[-<kind>].safetensors``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import gradleak as gl
from gradleak.generative import GenerativePrior, load, project
from gradleak.metrics import psnr


def _domain(prior: GenerativePrior, name: str) -> str:
    data = str(prior.metadata.get("data", ""))
    for domain in ("digits", "faces", "patches"):
        if data.startswith(domain) or Path(name).name.startswith(domain):
            return domain
    raise SystemExit(f"cannot tell the domain of {name}; name it <domain>.safetensors")


def measure(name: str, n: int, steps: int, starts: int, seed: int) -> dict[str, object]:
    """One row of the table for the prior file or shipped name ``name``."""
    prior = load(name)
    domain = _domain(prior, name)
    size, ch = prior.image_size, prior.channels
    total = gl.data.info(domain, split="holdout").num_images
    x, _ = gl.data.load(domain, size=size, n=min(n, total), seed=seed, split="holdout",
                        channels=ch)
    train_x, _ = gl.data.load(domain, size=size, n=None, split="train", channels=ch)
    baseline = psnr(train_x.mean(0, keepdim=True).expand_as(x), x)
    t0 = time.perf_counter()
    proj = project(prior, x, steps=steps, starts=starts, seed=seed)
    return {
        "domain": domain,
        "kind": prior.kind,
        "file": Path(name).name,
        "latent": prior.latent_dim,
        "params": sum(p.numel() for p in prior.parameters()),
        "train_s": prior.metadata.get("train_seconds", float("nan")),
        "n": len(x),
        "proj_psnr": float(proj.psnr.mean()),
        "proj_psnr_min": float(proj.psnr.min()),
        "mean_img_psnr": float(baseline.mean()),
        "proj_s": time.perf_counter() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--priors", nargs="+", default=gl.generative.available())
    parser.add_argument("--n", type=int, default=16, help="held-out images per domain")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--starts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cols = ["domain", "kind", "file", "latent", "params", "train_s", "n", "proj_psnr",
            "proj_psnr_min", "mean_img_psnr", "proj_s"]
    print(f"held-out projection: Adam, {args.steps} steps, {args.starts} starts, seed {args.seed}")
    print(" | ".join(cols))
    for name in args.priors:
        row = measure(name, args.n, args.steps, args.starts, args.seed)
        print(" | ".join(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c])
                         for c in cols), flush=True)


if __name__ == "__main__":
    main()
