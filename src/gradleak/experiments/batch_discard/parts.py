"""``batch-discard``'s label and attack parts, and the scoring they share."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gradleak.errors import GradleakError
from gradleak.experiments.batch_discard.data import (
    batch_labels,
    client_batches,
    distinct_images,
    normalization,
    server_model,
)
from gradleak.experiments.batch_discard.settings import Settings, attack_overrides
from gradleak.precision import full_precision


def label_scores(pred: Tensor | None, true: Tensor, num_classes: int) -> dict[str, float | None]:
    """iLRG's label existence and count accuracy (via :mod:`gradleak.metrics` if present)."""
    if pred is None:
        return {"label_existence_acc": None, "label_count_acc": None}
    try:
        from gradleak.metrics import label_scores as metric

        s = metric(pred, true, num_classes=num_classes)
        return {"label_existence_acc": float(s["label_existence_acc"]),
                "label_count_acc": float(s["label_count_acc"])}
    except ImportError:  # pragma: no cover - metrics is part of the package
        m = torch.bincount(pred.long(), minlength=num_classes)
        n = torch.bincount(true.long(), minlength=num_classes)
        return {"label_existence_acc": float(((m > 0) == (n > 0)).double().mean()),
                "label_count_acc": float((m == n).double().mean())}


def finite_mean(values: Sequence[float | None]) -> float | None:
    """The mean of the finite values (None when there are none)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


# ----------------------------------------------------------------------------- parts
def label_study(s: Settings, seed: int, out: Path) -> dict[str, Any]:
    """yin / ilrg / llg on the BN ConvNet per batch size, and iLRG on LeNet / MLP."""
    from gradleak import labels as lab
    from gradleak import models, simulate

    strategies = ("yin", "ilrg", "llg")
    rows: list[dict[str, Any]] = []
    model = server_model(s, seed)
    for mode, b, x, y in client_batches(s, seed):
        obs, _ = simulate(model, x, y, normalization=normalization(s))
        for name in strategies:
            try:
                pred = lab.recover_labels(obs, strategy=name)
                sc = label_scores(pred, y, s.num_classes)
                err = None
            except GradleakError as exc:
                sc, err = {"label_existence_acc": None, "label_count_acc": None}, str(exc)
            rows.append({"model": s.model, "mode": mode, "batch": b, "strategy": name,
                         **sc, "refused": err})
    ilrg_rows: list[dict[str, Any]] = []
    configs: list[tuple[str, int, dict[str, Any]]] = [
        ("lenet5", 10, {}), ("lenet5", 100, {}), ("lenet", 10, {}), ("lenet", 100, {}),
        ("mlp", 10, {"depth": 3, "width": 300}),
        ("mlp", 100, {"depth": 3, "width": 300}),
    ]
    for name, k, kw in configs:
        for b in s.ilrg_batches:
            for strategy in ("ilrg", "llg"):
                accs, exists, exact = [], [], 0
                for t in range(s.label_trials):
                    net = models.create(name, num_classes=k, seed=seed + t, **kw)
                    y = batch_labels(b, "repeated", k, seed + 1000 * t + b)
                    x = distinct_images(b, 32, seed=seed + 17 * t + b)
                    obs, _ = simulate(net, x, y)
                    sc = label_scores(lab.recover_labels(obs, strategy=strategy), y, k)
                    accs.append(sc["label_count_acc"])
                    exists.append(sc["label_existence_acc"])
                    exact += int(sc["label_count_acc"] == 1.0)
                ilrg_rows.append({
                    "model": name, "classes": k, "batch": b, "strategy": strategy,
                    "labels": "repeated (2 classes)", "trials": s.label_trials,
                    "count_acc": finite_mean(accs), "existence_acc": finite_mean(exists),
                    "exact_batches": exact,
                })
    # the same with labels drawn at random (repeats by chance), the iLRG paper's default
    for name, k, kw in configs:
        for b in s.ilrg_batches:
            accs, exists, exact = [], [], 0
            for t in range(s.label_trials):
                net = models.create(name, num_classes=k, seed=seed + t, **kw)
                gen = torch.Generator().manual_seed(seed + 5000 + 1000 * t + b)
                y = torch.randint(0, k, (b,), generator=gen)
                x = distinct_images(b, 32, seed=seed + 19 * t + b)
                obs, _ = simulate(net, x, y)
                sc = label_scores(lab.recover_labels(obs, strategy="ilrg"), y, k)
                accs.append(sc["label_count_acc"])
                exists.append(sc["label_existence_acc"])
                exact += int(sc["label_count_acc"] == 1.0)
            ilrg_rows.append({
                "model": name, "classes": k, "batch": b, "strategy": "ilrg",
                "labels": "uniform random", "trials": s.label_trials,
                "count_acc": finite_mean(accs), "existence_acc": finite_mean(exists),
                "exact_batches": exact,
            })
    return {"per_batch": rows, "ilrg": ilrg_rows}


def run_attack(obs: Any, truth: Any, attack: str, s: Settings, seed: int,
               **overrides: Any) -> tuple[Any, dict[str, Any]]:
    """``attack`` on ``obs`` at the experiment's budget and overrides (plus ``overrides``),
    scored against ``truth`` by the library's run glue (:func:`gradleak.run.attack_observation`).

    Returns:
        The reconstruction and its mean PSNR, SSIM and label-count / existence accuracy.
    """
    from gradleak.run import attack_observation

    extra: dict[str, Any] = {"iterations": s.iterations, "restarts": s.restarts}
    extra.update(attack_overrides(s, attack))
    extra.update(overrides)
    res = attack_observation(obs, truth, attack=attack, overrides=extra, seed=seed,
                             num_classes=s.num_classes)
    sc = res.scores
    return res.reconstruction, {
        "psnr": float(sc["psnr"]),
        "ssim": float(sc["ssim"]),
        "label_count_acc": sc["label_count_acc"],
        "label_existence_acc": sc["label_existence_acc"],
    }


def attack_study(s: Settings, seed: int, out: Path) -> dict[str, Any]:
    """ig and gradinversion per label mode and batch size on the BN ConvNet."""
    from gradleak import simulate
    from gradleak.report import save_grid

    model = server_model(s, seed).to(s.device)
    rows: list[dict[str, Any]] = []
    grids: list[tuple[str, str]] = []
    for mode, b, x, y in client_batches(s, seed):
        with full_precision():
            obs, truth = simulate(model, x.to(s.device), y.to(s.device),
                                  normalization=normalization(s))
        for attack in s.attacks:
            t0 = time.perf_counter()
            try:
                rec, sc = run_attack(obs, truth, attack, s, seed)
            except GradleakError as exc:
                rows.append({"attack": attack, "mode": mode, "batch": b, "psnr": None,
                             "refused": str(exc)})
                continue
            rows.append({"attack": attack, "mode": mode, "batch": b, **sc,
                         "seconds": round(time.perf_counter() - t0, 2), "refused": None})
            if b <= s.grids_up_to:
                rel = f"grids/{attack}_{mode}_b{b}.png"
                save_grid(out / rel, rec.images.cpu(), truth.images.cpu(),
                          labels=rec.labels, truth_labels=truth.labels,
                          title=f"{attack}, {mode} labels, batch {b}: "
                                f"{sc['psnr']:.2f} dB")
                grids.append((rel, f"{attack}, {mode} labels, batch {b}"))
    return {"rows": rows, "grids": grids}
