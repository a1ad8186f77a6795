"""Trains the shipped generative priors, one per offline domain, on its ``train`` split only.

Each domain has a preset (architecture, epochs, batch, augmentation) sized to train in a few
minutes on one CPU thread; the kind per domain (:data:`SHIPPED`) was chosen by the held-out
projection PSNR of ``benchmarks/prior_quality.py`` (see benchmarks/README.md). Training is
deterministic given the seed, so the command stored in each prior's ``metadata["command"]``
rebuilds it.

Usage:
    # the shipped priors -> src/gradleak/generative/shipped/<domain>.safetensors
    python scripts/build_priors.py
    # one prior of one kind (the form stored in metadata["command"]) -> shipped/<domain>...
    python scripts/build_priors.py --domains digits --kinds vae --seed 0
    # candidates of both kinds for the comparison -> DIR/<domain>-<kind>.safetensors
    python scripts/build_priors.py --kinds dcgan vae --out-dir /tmp/priors
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import Any

import torch

from gradleak.generative import train
from gradleak.generative.io import shipped_dir

#: per-domain settings (32x32; small enough for minutes on one thread)
PRESETS: dict[str, dict[str, Any]] = {
    "digits": dict(latent_dim=32, width=64, epochs=20, batch_size=64, flip=False),
    "faces": dict(latent_dim=32, width=64, epochs=250, batch_size=20, flip=True),
    "patches": dict(latent_dim=64, width=128, epochs=20, batch_size=64, flip=True),
}
#: the kind shipped per domain (highest held-out projection PSNR in benchmarks/prior_quality.py)
SHIPPED = {"digits": "vae", "faces": "vae", "patches": "vae"}
IMAGE_SIZE = 32


def command(domain: str, kind: str, seed: int) -> str:
    """The command that rebuilds one prior (its output lands in the shipped folder)."""
    args = ["python", "scripts/build_priors.py", "--domains", domain, "--kinds", kind,
            "--seed", str(seed)]
    return shlex.join(args)


def build(domain: str, kind: str, seed: int, out: Path) -> float:
    """Trains one prior, writes it to ``out`` and returns the training seconds."""
    preset = PRESETS[domain]
    last = [0.0]

    def progress(status: Any) -> None:
        if status.end_of_epoch and (status.epoch % max(1, status.epochs // 10) == 0):
            losses = ", ".join(f"{k} {v:.4g}" for k, v in status.losses.items())
            print(f"  {domain}/{kind} epoch {status.epoch}/{status.epochs}: {losses}", flush=True)
            last[0] = time.perf_counter()

    t0 = time.perf_counter()
    prior = train(domain, kind=kind, image_size=IMAGE_SIZE, seed=seed, callback=progress,
                  command=command(domain, kind, seed), **preset)
    seconds = time.perf_counter() - t0
    prior.save(out)
    print(f"{out}: {out.stat().st_size / 1e6:.2f} MB, {seconds:.0f} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", nargs="+", default=sorted(PRESETS), choices=sorted(PRESETS))
    parser.add_argument("--kinds", nargs="+", default=None, choices=["dcgan", "vae"],
                        help="train these kinds (default: the shipped kind of each domain)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=shipped_dir())
    args = parser.parse_args()
    torch.set_num_threads(1)
    for domain in args.domains:
        kinds = args.kinds or [SHIPPED[domain]]
        for kind in kinds:
            name = domain if len(kinds) == 1 else f"{domain}-{kind}"
            build(domain, kind, args.seed, args.out_dir / f"{name}.safetensors")


if __name__ == "__main__":
    main()
