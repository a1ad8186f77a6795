"""``batch-discard``'s ablation: gradinversion without each prior, and ig."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from gradleak.errors import ConfigError
from gradleak.experiments.batch_discard.data import (
    batch_labels,
    distinct_images,
    normalization,
    server_model,
)
from gradleak.experiments.batch_discard.parts import finite_mean, run_attack
from gradleak.experiments.batch_discard.settings import (
    NAME,
    Settings,
    attack_overrides,
    calibrated_ig,
)
from gradleak.precision import full_precision

#: label prefixes of the rows that run ``ig`` as tuned as ``gradinversion``
IG_SAME_LR = "ig at gradinversion's lr"
IG_CALIBRATED = "ig, calibrated"

#: the ablation table's reference row (no attack)
GRAY = "reference: mid-gray image (no attack)"
#: attacks scoring less than this above the mid-gray image have not reconstructed the batch
GRAY_MARGIN_DB = 1.0


def ablation_runs(s: Settings) -> list[tuple[str, str, dict[str, Any]]]:
    """The ablation's variants: ``(label, attack, overrides)``.

    ``gradinversion`` as the experiment runs it (the recipe's defaults updated with
    :func:`attack_overrides`), without each of its priors in turn, without any
    prior, without its Langevin noise (not a prior, but part of the recipe), and ``ig`` with
    its own labels (joint optimisation at batch > 1) and with ``yin``'s.
    """
    from gradleak.attacks import ATTACKS

    cfg = ATTACKS.get("gradinversion").Config()  # type: ignore[attr-defined]
    extra = attack_overrides(s, "gradinversion")
    priors = dict(extra.get("priors", cfg.priors))
    runs: list[tuple[str, str, dict[str, Any]]] = [("gradinversion (all priors)",
                                                    "gradinversion", {})]
    for name in priors:
        runs.append((f"without {name}", "gradinversion",
                     {"priors": {k: v for k, v in priors.items() if k != name}}))
    runs.append(("gradinversion, no priors", "gradinversion", {"priors": {}}))
    if extra.get("langevin", cfg.langevin) > 0:
        runs.append(("gradinversion without Langevin noise", "gradinversion", {"langevin": 0.0}))
    runs.append(("ig (reference, its own labels)", "ig", {}))
    runs.append(("ig with yin labels", "ig", {"labels": "yin"}))
    tuned = calibrated_ig(s.model)
    if tuned is not None:
        runs.append((f"{IG_CALIBRATED} {json.dumps(tuned)}", "ig", tuned))
    ig_lr = ATTACKS.get("ig").Config().lr  # type: ignore[attr-defined]
    lr = extra.get("lr", cfg.lr)
    if lr != ig_lr:  # the same step size for both, so that the comparison is not only lr
        runs.append((f"{IG_SAME_LR} ({lr:g})", "ig", {"lr": lr}))
    return runs


def ablation_settings(s: Settings) -> Settings:
    """``s`` with the ablation's image size and ConvNet width (smaller: many variants run)."""
    return replace(s, size=s.ablation_size, width=s.ablation_width, model=s.ablation_model)


def ablation_batch(s: Settings, seed: int) -> tuple[Any, Any]:
    """The ablation's observation and ground truth for ``seed`` (unique labels)."""
    from gradleak import simulate

    s = ablation_settings(s)
    model = server_model(s, seed).to(s.device)
    b = s.ablation_batch
    y = batch_labels(b, "unique", s.num_classes, seed + b)
    x = distinct_images(b, s.size, seed=seed + 31 * b)
    with full_precision():
        return simulate(model, x.to(s.device), y.to(s.device), normalization=normalization(s))


def ablation_study(s: Settings, seed: int, out: Path) -> list[dict[str, Any]]:
    """gradinversion with each of its priors removed (and ig) at ``ablation_batch``.

    Every variant runs at the same iterations and restarts on the same batches: one batch
    (and server model) per seed in ``s.ablation_seeds`` (default: ``seed`` alone). A row
    holds the PSNR averaged over those batches (each batch's PSNR is itself the mean over
    its images after matching), the per-seed values and the seconds per run; see
    :func:`ablation_table`. ``s.ablation_variants`` picks a subset of the rows by name.
    """
    from gradleak.metrics import psnr
    from gradleak.report import save_grid

    s = ablation_settings(s)  # the ablation's model, size and width (and their weights)
    seeds = tuple(s.ablation_seeds) or (seed,)
    runs = ablation_runs(s)
    if s.ablation_variants:
        unknown = sorted(set(s.ablation_variants) - {label for label, _, _ in runs})
        if unknown:
            raise ConfigError(f"experiment {NAME!r}: no ablation variant {unknown}; the "
                              f"variants are {[label for label, _, _ in runs]}")
        runs = [r for r in runs if r[0] in s.ablation_variants]
    per_run: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in runs}
    gray_rows: list[dict[str, Any]] = []
    grids: dict[str, str] = {}
    for k, sd in enumerate(seeds):
        obs, truth = ablation_batch(s, sd)
        t = truth.images.cpu()
        gray_rows.append({"psnr": float(psnr(torch.full_like(t, 0.5), t).mean()), "ssim": None,
                          "label_count_acc": None, "seed": sd, "seconds": 0.0})
        for i, (label, attack, overrides) in enumerate(runs):
            t0 = time.perf_counter()
            rec, sc = run_attack(obs, truth, attack, s, sd, **overrides)
            seconds = time.perf_counter() - t0
            per_run[label].append({**sc, "seed": sd, "seconds": seconds})
            if k == 0 and (i == 0 or attack == "ig"):
                rel = f"grids/ablation_{i}.png"
                save_grid(out / rel, rec.images.cpu(), t, labels=rec.labels,
                          truth_labels=truth.labels,
                          title=f"{label} (seed {sd}): {sc['psnr']:.2f} dB")
                grids[label] = rel
    return ablation_table({**per_run, GRAY: gray_rows}, grids)


def ablation_table(per_run: Mapping[str, Sequence[Mapping[str, Any]]],
                   grids: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The ablation's rows from each variant's per-seed results, in the given order.

    Args:
        per_run: variant name -> one dict per seed (``seed``, ``psnr``, ``ssim``,
            ``label_count_acc``, ``seconds``). The first variant is the reference of the
            ``delta_psnr_vs_full`` column; :data:`GRAY` is the mid-gray reference row.
        grids: variant name -> its grid image (relative path), where one was drawn.

    Returns:
        One row per variant: mean PSNR / SSIM / label-count accuracy over the seeds, the
        per-seed PSNR, the raw per-seed results and the mean seconds per run.
    """
    rows: list[dict[str, Any]] = []
    for label, res in per_run.items():
        res = sorted(res, key=lambda r: r["seed"])
        row: dict[str, Any] = {
            "variant": label,
            "psnr": finite_mean([r["psnr"] for r in res]),
            "ssim": finite_mean([r["ssim"] for r in res]),
            "label_count_acc": finite_mean([r["label_count_acc"] for r in res]),
            "psnr_per_seed": [round(r["psnr"], 3) for r in res],
            "seeds": [r["seed"] for r in res],
            "seconds": round(sum(r["seconds"] for r in res) / len(res), 3),
            "per_seed": [dict(r) for r in res],
        }
        if grids and label in grids:
            row["grid"] = grids[label]
        rows.append(row)
    full = rows[0]["psnr"] if rows else None
    for r in rows:
        r["delta_psnr_vs_full"] = (None if r["psnr"] is None or full is None
                                   else r["psnr"] - full)
    return rows
