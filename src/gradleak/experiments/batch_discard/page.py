"""``batch-discard``'s figures and HTML page."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gradleak.experiments.batch_discard.ablation import (
    GRAY,
    GRAY_MARGIN_DB,
    IG_CALIBRATED,
    IG_SAME_LR,
    ablation_settings,
)
from gradleak.experiments.batch_discard.settings import BN_MODES, Settings, attack_overrides
from gradleak.safeio import write_with

#: how the page describes the server's model
MODEL_TEXT = {"convnet": "IG's architecture, 8 blocks", "convnet_small": "3 blocks"}


def save_plot(path: Path, series: Mapping[str, tuple[list[int], list[float | None]]], *,
              ylabel: str, title: str, ylim: tuple[float, float] | None = None) -> Path:
    """Writes a line plot (one line per series, x on a log2 axis) as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, (xs, ys) in series.items():
        pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and math.isfinite(y)]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return write_with(path, lambda f: fig.savefig(f, format="png"))


def series_of(rows: list[dict[str, Any]], key: str, group: Sequence[str], value: str
              ) -> dict[str, tuple[list[int], list[float | None]]]:
    """``value`` against ``key`` for each combination of the ``group`` fields of ``rows``."""
    out: dict[str, tuple[list[int], list[float | None]]] = {}
    for r in rows:
        name = ", ".join(str(r[g]) for g in group)
        xs, ys = out.setdefault(name, ([], []))
        xs.append(int(r[key]))
        ys.append(r.get(value))
    return out


def write_experiment_page(out: Path, s: Settings, results: dict[str, Any],
                          seconds: float) -> Path:
    """Writes ``index.html`` under ``out``: setup, headline, plots, tables and grids."""
    from gradleak.report import Section, write_page

    sections: list[Section] = [
        Section("Setup", text=(
            f"BN ConvNet {s.model!r} ({MODEL_TEXT.get(s.model, 'a zoo model')}) of width "
            f"{s.width}, {s.num_classes} classes, "
            f"{s.size}x{s.size} images, untrained weights with BN running statistics from "
            f"{s.bn_rounds} earlier round(s) on other photos; FedSGD, client in "
            + BN_MODES[s.bn_mode] + ", "
            f"inputs {'normalised with CIFAR-10 mean/std' if s.normalize else 'in [0, 1]'}. "
            f"Attacks at {s.iterations} iterations and {s.restarts} restarts each, labels "
            "recovered by each attack's own strategy (never given). Unique labels: distinct "
            "classes; repeated labels: every image from one of two classes. PSNR is the mean "
            f"over the batch after Hungarian matching. Total time {seconds:.0f} s."
        )),
    ]
    att = results["attacks"]["rows"]
    if att:
        sections.append(Section(
            "Reconstruction vs batch size",
            images=[("psnr_vs_batch.png", "mean PSNR vs batch size"),
                    ("label_acc_vs_batch.png", "label-count accuracy of each attack's labels")],
            table=[{k: r.get(k) for k in ("attack", "mode", "batch", "psnr", "ssim",
                                           "label_count_acc", "label_existence_acc", "seconds",
                                           "refused")} for r in att],
        ))
    if results["attacks"]["grids"]:
        sections.append(Section("Reconstructions (truth above, matched reconstruction below)",
                                images=list(results["attacks"]["grids"])))
    lab = results["labels"]
    if lab["per_batch"]:
        sections.append(Section(
            "Label recovery vs batch size (BN ConvNet)",
            text=("yin assumes unique labels (it returns B distinct classes), so with repeated "
                  "labels it can be right about at most two; ilrg and llg count instances."),
            images=[("labels_vs_batch.png", "label-count accuracy of each strategy")],
            table=[{k: r.get(k) for k in ("mode", "batch", "strategy", "label_count_acc",
                                           "label_existence_acc", "refused")}
                   for r in lab["per_batch"]],
        ))
    if lab["ilrg"]:
        sections.append(Section(
            "iLRG and LLG on untrained LeNet / MLP",
            text=("Count accuracy and existence accuracy average over all classes (iLRG's "
                  "LnAcc and LeAcc); 'exact batches' counts trials where every class count "
                  "was right."),
            table=lab["ilrg"],
        ))
    if results.get("ablation"):
        abl = {r["variant"]: r for r in results["ablation"]}
        gi_row = abl.get("gradinversion (all priors)")
        ig_row = abl.get("ig (reference, its own labels)")
        seeds = results["ablation"][0].get("seeds") or [results.get("seed")]
        where = (f"batch {s.ablation_batch} (unique labels), BN ConvNet {s.ablation_model!r} "
                 f"of width "
                 f"{s.ablation_width}, {s.ablation_size}x{s.ablation_size} images, "
                 f"{s.iterations} iterations, "
                 f"{s.restarts} restarts, mean over {len(seeds)} batch(es) (seeds "
                 f"{', '.join(map(str, seeds))})")
        if gi_row and ig_row and gi_row["psnr"] is not None and ig_row["psnr"] is not None:
            gi, ig = gi_row["psnr"], ig_row["psnr"]
            verdict = "beats" if gi > ig else "does not beat"
            wins = sum(a > b for a, b in zip(gi_row["psnr_per_seed"], ig_row["psnr_per_seed"],
                                             strict=True))
            gray_row = abl.get(GRAY)
            gray_text = ""
            tuned = [r for r in results["ablation"]  # ig as tuned as gradinversion
                     if r["variant"].startswith((IG_SAME_LR, IG_CALIBRATED))
                     and r["psnr"] is not None]
            best = max(gi, ig, *(r["psnr"] for r in tuned))
            for r in tuned:
                gray_text += f" {r['variant']}: {r['psnr']:.2f} dB."
            if gray_row is not None and gray_row["psnr"] is not None:
                gray = gray_row["psnr"]
                gray_text += (f" For scale: a constant mid-gray image scores {gray:.2f} dB on "
                              "the same batches.")
                if best < gray + GRAY_MARGIN_DB:
                    gray_text += (f" Both attacks stay within {GRAY_MARGIN_DB:.0f} dB of it: "
                                  "neither reconstructs these batches at this budget, so the "
                                  "comparison ranks how far each gets, not a recovery.")
            sections.insert(1, Section("Headline", text=(
                f"At {where}: gradinversion reaches {gi:.2f} dB and ig {ig:.2f} dB mean PSNR; "
                f"gradinversion {verdict} ig here (higher on {wins} of {len(seeds)} batch(es))."
                + gray_text
            )))
        sections.append(Section(
            "Ablation: gradinversion without each prior, and ig",
            text=(f"{where}. gradinversion runs with this experiment's weights (setting "
                  f"'gradinversion': "
                  f"{json.dumps(attack_overrides(ablation_settings(s), 'gradinversion'))}; "
                  "{} is the paper's defaults). Every variant removes one prior and keeps "
                  "the others at those weights; 'delta' is the change of "
                  "mean PSNR against gradinversion with all priors; 'seconds' is the time "
                  "of one run."),
            table=[{k: v for k, v in r.items() if k not in ("grid", "seeds", "per_seed")}
                   for r in results["ablation"]],
            images=[(r["grid"], r["variant"]) for r in results["ablation"] if r.get("grid")],
        ))
    sections.append(Section("Files", links=[("results.json", "all numbers (JSON)")]))
    return write_page(out / "index.html", "Batch size, repeated labels and GradInversion",
                      sections, subtitle="gradleak experiment batch-discard")
