"""Runs ``defense-curves`` (registered as an experiment on import)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from gradleak.experiments.base import register_experiment
from gradleak.experiments.defense_curves.cache import ResultCache, cache_key
from gradleak.experiments.defense_curves.leakage import leakage_rows, summarise
from gradleak.experiments.defense_curves.page import write_plots, write_study_page
from gradleak.experiments.defense_curves.points import Point, points, runs_on
from gradleak.experiments.defense_curves.settings import NAME, Settings, resolve_settings
from gradleak.report.run import to_jsonable
from gradleak.safeio import ensure_dir
from gradleak.threads import threads_while


@register_experiment(NAME)
def run(out: Path, *, quick: bool = False, seed: int = 0, **settings: Any) -> Path:
    """Leakage (PSNR, SSIM, label accuracy) and model accuracy against defense strength.

    Axes: Gaussian noise sigma, DP-SGD epsilon (Opacus, over the utility training), top-k
    pruning ratio, quantisation bits and batch size, each against the undefended baseline,
    for every attack in ``attacks`` (limited to some points by ``attack_points``) over
    ``seeds``. The model accuracy of each defense comes from :func:`gradleak.defenses.utility`
    (LeNet on the ``digits`` train/holdout split), trained once per defense setting. Finished
    runs are kept in ``out/cache.jsonl`` and reused by a rerun into the same folder. The page
    holds one table row per defense (every attack's leakage beside the model's accuracy), the
    DP-SGD points per seed, and plain vs adaptive attacks on the same seeds (also written to
    ``tables.md``).

    Args:
        out: output folder (created).
        quick: a smoke-test size (seconds).
        seed: seed of the utility training (the attack seeds are ``seeds``).
        **settings: any field of :class:`Settings`; unknown names raise ``ConfigError``.

    Returns:
        The path of the HTML page.

    Example:
        >>> from gradleak.experiments import run_experiment
        >>> page = run_experiment("defense-curves", "runs/dc", quick=True)  # doctest: +SKIP
    """
    s = resolve_settings(quick, settings)
    out = ensure_dir(out)
    with threads_while(s.threads):
        return _run(out, s, quick, seed)


def _utility_rows(s: Settings, pts: list[Point], seed: int, cache: ResultCache
                  ) -> dict[str, dict[str, Any]]:
    """Model accuracy per point label, one training per defense setting (shared by every
    attack and seed; the batch axis has none: batch size is not a defense). The undefended
    training runs once and is the baseline of every point."""
    import gradleak as gl
    from gradleak.defenses.cost import utility

    shape = (1, s.utility_size, s.utility_size)

    def factory() -> torch.nn.Module:
        return gl.models.create(s.model, num_classes=10, in_shape=shape)

    out: dict[str, dict[str, Any]] = {}
    clean: float | None = None
    for p in sorted((p for p in pts if p.axis != "batch"), key=lambda p: p.defense is not None):
        key = cache_key("utility", model=s.model, data=s.utility_data, size=s.utility_size,
                        epochs=s.utility_epochs, batch=s.utility_batch, lr=s.utility_lr,
                        seed=seed, defense=p.defense)
        t = time.perf_counter()
        row = cache.get(key)
        if row is None:
            res = utility(factory, s.utility_data, p.defense, size=s.utility_size, channels=1,
                          epochs=s.utility_epochs, batch_size=s.utility_batch,
                          lr=s.utility_lr, seed=seed, clean_accuracy=clean)
            row = {"model_acc": res.accuracy_defended, "model_acc_clean": res.accuracy_clean,
                   "model_acc_initial": res.accuracy_initial, "rounds": res.rounds,
                   "utility_epsilon": res.report.get("epsilon")}
            cache.put(key, row)
        clean = row["model_acc_clean"] if clean is None else clean
        out[p.label] = row
        if s.progress:
            print(f"[defense-curves utility] {p.label:<14} accuracy {row['model_acc']:.3f}"
                  f" (clean {clean:.3f}, {time.perf_counter() - t:.0f} s)", file=sys.stderr,
                  flush=True)
    return out


def _run(out: Path, s: Settings, quick: bool, seed: int) -> Path:
    from gradleak.data import load
    from gradleak.defenses.cost import training_rounds

    t0 = time.perf_counter()
    n_train = len(load(s.utility_data, size=s.utility_size, n=None, split="train")[1])
    steps = training_rounds(n_train, s.utility_epochs, s.utility_batch)
    sample_rate = s.utility_batch / n_train
    pts = points(s, sample_rate, steps)
    cache = ResultCache(out if s.cache else None)
    utility = _utility_rows(s, pts, seed, cache) if s.utility else {}
    rows = leakage_rows(s, pts, out, cache)
    summary = summarise(rows)
    for r in summary:
        r.update(utility.get(r["point"], {}))
    results = {"settings": to_jsonable(s.__dict__), "quick": quick, "seed": seed,
               "dp_accounting": {"sample_rate": sample_rate, "steps": steps,
                                 "n_train": n_train},
               "points": [{"point": p.label, "axis": p.axis, "value": p.value,
                           "defense": p.defense, "batch": p.batch,
                           "attacks": [a for a in s.attacks if runs_on(s, a, p)],
                           **utility.get(p.label, {})} for p in pts],
               "rows": rows, "summary": summary, "cached_results": cache.hits}
    results["seconds"] = time.perf_counter() - t0
    results["attack_seconds"] = sum(float(r.get("seconds") or 0.0) for r in rows)
    (out / "results.json").write_text(json.dumps(to_jsonable(results), indent=2))
    plots = write_plots(out, s, summary, results["points"])
    return write_study_page(out, s, results, plots)
