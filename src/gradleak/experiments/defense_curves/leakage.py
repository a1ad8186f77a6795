"""``defense-curves``' leakage runs: simulate the defended client, attack, evaluate."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from gradleak.errors import ThreatModelError
from gradleak.experiments.defense_curves.cache import ResultCache, cache_key
from gradleak.experiments.defense_curves.points import Point, runs_on
from gradleak.experiments.defense_curves.settings import Settings


def attack_recipe(s: Settings, label: str) -> tuple[str, dict[str, Any]]:
    """The registered recipe and overrides behind an attack label."""
    return s.attack_recipes.get(label, label), dict(s.attack_overrides.get(label, {}))


def _attack_once(s: Settings, p: Point, label: str, seed: int, obs: Any, truth: Any,
                 out: Path) -> dict[str, Any]:
    """One attack run on one observation: its row (PSNR, SSIM, label accuracy, grid file)."""
    import gradleak as gl

    recipe, overrides = attack_recipe(s, label)
    report = obs.defense_report or {}
    t = time.perf_counter()
    row: dict[str, Any] = {"psnr": None, "ssim": None, "label_acc": None,
                           "defense": obs.defense, "epsilon": report.get("epsilon"),
                           "noise_multiplier": report.get("noise_multiplier")}
    try:
        rec = gl.reconstruct(obs, attack=recipe, seed=seed, **overrides)
    except ThreatModelError as exc:  # e.g. idlg's label rule needs batch 1
        row["refused"] = str(exc)
        rec = None
    if rec is not None:
        scores = gl.evaluate(rec, truth)
        row.update(psnr=float(scores["psnr"]), ssim=float(scores["ssim"]),
                   label_acc=float(scores["label_acc"]))
        if s.grids and seed == s.seeds[0]:
            name = f"grid_{p.axis}_{p.value:g}_{label}.png".replace(" ", "_")
            gl.report.save_grid(out / name, rec.images, truth.images, labels=rec.labels,
                                truth_labels=truth.labels, title=f"{label}, {p.label}")
            row["grid"] = name
    row["seconds"] = time.perf_counter() - t
    return row


def leakage_key(s: Settings, p: Point, label: str, seed: int) -> str:
    """The cache key of one attack run: everything its result depends on."""
    recipe, overrides = attack_recipe(s, label)
    return cache_key("leakage", model=s.model, data=s.data, size=s.size, defense=p.defense,
                     batch=p.batch, recipe=recipe, overrides=overrides, seed=seed,
                     grid=bool(s.grids and seed == s.seeds[0]))


def leakage_rows(s: Settings, pts: list[Point], out: Path, cache: ResultCache
                 ) -> list[dict[str, Any]]:
    """One row per (point, attack running on it, seed): PSNR, SSIM, label accuracy.

    Each seed's observation is simulated once and attacked by every attack that runs on the
    point; runs found in ``cache`` are not repeated (nor is their simulation).
    """
    import gradleak as gl

    jobs = [(p, seed, [a for a in s.attacks if runs_on(s, a, p)]) for p in pts
            for seed in s.seeds]
    total = sum(len(labels) for _, _, labels in jobs)
    rows: list[dict[str, Any]] = []
    done = computed = 0
    t0 = time.perf_counter()
    for p, seed, labels in jobs:
        sim: tuple[Any, Any, float] | None = None
        for label in labels:
            key = leakage_key(s, p, label, seed)
            row = cache.get(key)
            cached = row is not None and (not row.get("grid") or (out / row["grid"]).is_file())
            if row is None or not cached:
                if sim is None:
                    torch.manual_seed(seed)
                    model = gl.models.create(s.model, num_classes=10,
                                             in_shape=(3, s.size, s.size))
                    x, y = gl.data.load(s.data, size=s.size, n=p.batch, seed=seed,
                                        unique_labels=True)
                    obs, truth = gl.simulate(model, x, y, defense=p.defense, seed=seed)
                    gray = gl.Reconstruction(images=torch.full_like(x, 0.5), labels=None,
                                             attack="gray", config={})
                    sim = (obs, truth, float(gl.evaluate(gray, truth)["psnr"]))
                row = {**_attack_once(s, p, label, seed, sim[0], sim[1], out),
                       "gray_psnr": sim[2]}
                cache.put(key, row)
                computed += 1
            row.update(axis=p.axis, value=p.value, point=p.label, batch=p.batch, attack=label,
                       seed=seed, cached=cached)
            rows.append(row)
            done += 1
            if s.progress:
                eta = ((time.perf_counter() - t0) / computed * (total - done)) if computed else 0
                psnr = "refused" if row["psnr"] is None else f"PSNR {row['psnr']:.2f} dB"
                how = "cached" if cached else f"{row['seconds']:.0f} s"
                print(f"[defense-curves {done}/{total}] {p.label:<14} {label:<11} seed {seed}"
                      f": {psnr} ({how}, ~{eta:.0f} s left)", file=sys.stderr, flush=True)
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over seeds per (point, attack)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["point"], r["attack"]), []).append(r)
    out = []
    for (point, attack), all_rows in groups.items():
        rs = [r for r in all_rows if r["psnr"] is not None]
        head = {"axis": all_rows[0]["axis"], "value": all_rows[0]["value"], "point": point,
                "attack": attack, "epsilon": all_rows[0]["epsilon"],
                "noise_multiplier": all_rows[0]["noise_multiplier"],
                "gray_psnr": sum(r["gray_psnr"] for r in all_rows) / len(all_rows)}
        if not rs:
            out.append({**head, "psnr": None, "refused": all_rows[0].get("refused")})
            continue
        ps = [r["psnr"] for r in rs]
        mean = sum(ps) / len(ps)
        sd = math.sqrt(sum((v - mean) ** 2 for v in ps) / max(len(ps) - 1, 1))
        out.append({
            **head,
            "psnr": mean, "psnr_sd": sd, "psnr_min": min(ps), "psnr_max": max(ps),
            "ssim": sum(r["ssim"] for r in rs) / len(rs),
            "label_acc": sum(r["label_acc"] for r in rs) / len(rs),
            "seeds": [r["seed"] for r in rs],
            "psnr_per_seed": ps,
        })
    return out
