"""Runs ``batch-discard`` (registered as an experiment on import)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from gradleak.experiments.base import register_experiment
from gradleak.experiments.batch_discard.ablation import ablation_study
from gradleak.experiments.batch_discard.page import series_of, write_experiment_page
from gradleak.experiments.batch_discard.parts import attack_study, label_study
from gradleak.experiments.batch_discard.settings import NAME, Settings, resolve_settings
from gradleak.persistence.files import write_json
from gradleak.persistence.jsonio import to_jsonable
from gradleak.report.plots import save_series_plot as save_plot
from gradleak.safeio import ensure_dir
from gradleak.threads import threads_while


@register_experiment(NAME)
def run(out: Path, *, quick: bool = False, seed: int = 0, **settings: Any) -> Path:
    """Runs the batch-size / repeated-label study and writes ``index.html`` under ``out``.

    Args:
        out: output folder (created).
        quick: a smoke-test size (seconds).
        seed: seed of models, batches and attacks.
        **settings: any field of :class:`Settings` (e.g. ``batch_sizes=[1, 8]``,
            ``iterations=500``); unknown names raise ``ConfigError``.

    Returns:
        The path of the HTML page.

    Example:
        >>> from gradleak.experiments import run_experiment
        >>> page = run_experiment("batch-discard", "runs/bd", quick=True)   # doctest: +SKIP
    """
    s = resolve_settings(quick, settings)
    out = ensure_dir(out)
    with threads_while(s.threads):  # tiny models run far faster on one thread
        return _run(out, s, quick, seed)


def _run(out: Path, s: Settings, quick: bool, seed: int) -> Path:
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    results: dict[str, Any] = {"settings": to_jsonable(s.__dict__), "quick": quick, "seed": seed}
    results["labels"] = (label_study(s, seed, out) if "labels" in s.parts
                         else {"per_batch": [], "ilrg": []})
    results["attacks"] = (attack_study(s, seed, out) if "attacks" in s.parts
                          else {"rows": [], "grids": []})
    results["ablation"] = (ablation_study(s, seed, out)
                           if s.ablation and "ablation" in s.parts else [])
    rows = [r for r in results["attacks"]["rows"] if r.get("psnr") is not None]
    if results["attacks"]["rows"]:
        save_plot(out / "psnr_vs_batch.png", series_of(rows, "batch", ("attack", "mode"), "psnr"),
              ylabel="mean PSNR (dB)", title="reconstruction quality vs batch size")
        save_plot(out / "label_acc_vs_batch.png",
              series_of(rows, "batch", ("attack", "mode"), "label_count_acc"),
              ylabel="label-count accuracy", title="labels recovered by the attacks",
              ylim=(-0.02, 1.02))
    if results["labels"]["per_batch"]:
        save_plot(out / "labels_vs_batch.png",
              series_of(results["labels"]["per_batch"], "batch", ("strategy", "mode"),
                      "label_count_acc"),
              ylabel="label-count accuracy", title="label strategies vs batch size",
              ylim=(-0.02, 1.02))
    seconds = time.perf_counter() - t0
    results["seconds"] = seconds
    write_json(out / "results.json", results)
    return write_experiment_page(out, s, results, seconds)

