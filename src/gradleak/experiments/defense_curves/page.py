"""``defense-curves``' plots, headline and HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradleak.experiments.defense_curves.settings import Settings

#: how each axis is drawn: x label, x scale
AXIS_PLOT = {
    "noise": ("Gaussian noise sigma", "log"),
    "dp": ("DP-SGD epsilon (Opacus, delta 1e-5)", "log"),
    "prune": ("top-k pruning ratio", "linear"),
    "quantize": ("quantisation bits", "linear"),
    "sign": ("sign compression (one point)", "linear"),
    "batch": ("batch size", "log2"),
}
METRICS = {"psnr": ("mean PSNR (dB)", None), "ssim": ("mean SSIM", (-0.05, 1.02)),
           "label_acc": ("label accuracy", (-0.02, 1.02)),
           "model_acc": ("model accuracy (digits holdout)", (-0.02, 1.02))}
#: the issue's thresholds
IDLG_FLOOR, IG_FLOOR, DP_CEILING, DP_EPSILON = 35.0, 20.0, 12.0, 8.0


def x_of(row: dict[str, Any]) -> float:
    """The x value of a summary row: the Opacus epsilon on the DP axis, else the axis value."""
    if row["axis"] == "dp" and row.get("epsilon") is not None:
        return float(row["epsilon"])
    return float(row["value"])


def write_plots(out: Path, s: Settings, summary: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """One PNG per (axis, metric): the metric against defense strength, one line per attack."""
    from gradleak.report import save_curves

    base = {r["attack"]: r for r in summary if r["axis"] == "none"}
    made = []
    for axis in s.axes:
        xlabel, xscale = AXIS_PLOT[axis]
        for metric, (ylabel, ylim) in METRICS.items():
            if metric == "model_acc" and (axis == "batch" or not s.utility):
                continue
            series: dict[str, tuple[list[float], list[float | None]]] = {}
            names = [None] if metric == "model_acc" else list(s.attacks)
            for attack in names:
                rows = sorted((r for r in summary if r["axis"] == axis
                               and (attack is None or r["attack"] == attack)
                               and (attack is not None or r["attack"] == s.attacks[0])),
                              key=x_of)
                xs = [x_of(r) for r in rows]
                ys = [r.get(metric) for r in rows]
                if axis == "batch" and attack in base:  # batch 1 is the baseline
                    xs, ys = [1.0, *xs], [base[attack].get(metric), *ys]
                series[attack or "LeNet"] = (xs, ys)
            name = f"{axis}_{metric}.png"
            gray = base[s.attacks[0]].get("gray_psnr") if metric == "psnr" and base else None
            save_curves(out / name, series, xlabel=xlabel, ylabel=ylabel,
                        title=f"{ylabel} vs {xlabel}", xscale=xscale, ylim=ylim,
                        hline=(gray, "mid-gray image") if gray is not None else None)
            made.append((name, f"{ylabel} vs {xlabel}"))
    return made


def headline(s: Settings, summary: list[dict[str, Any]]) -> str:
    """The issue's claims, checked on this run's numbers (met or not, as measured)."""
    base = {r["attack"]: r for r in summary if r["axis"] == "none"}
    dp = [r for r in summary if r["axis"] == "dp" and r.get("epsilon") is not None
          and r["epsilon"] <= DP_EPSILON]
    parts = []
    for attack, r in base.items():
        if r["psnr"] is None:
            continue
        floor = {"idlg": IDLG_FLOOR, "ig": IG_FLOOR}.get(attack)
        verdict = "" if floor is None else (
            f" (claim > {floor:g} dB: {'met' if r['psnr'] > floor else 'NOT met'})")
        parts.append(f"no defense, {attack}: {r['psnr']:.2f} dB mean over seeds "
                     f"{r['seeds']} (min {r['psnr_min']:.2f}, max {r['psnr_max']:.2f})"
                     + verdict + ".")
    if dp:
        eps = max(r["epsilon"] for r in dp)
        for r in sorted(dp, key=lambda r: r["attack"]):
            if r["epsilon"] != eps or r["psnr"] is None:
                continue
            ok = r["psnr_max"] < DP_CEILING
            parts.append(
                f"DP-SGD at Opacus epsilon {r['epsilon']:.2f} (delta {s.dp_delta:g}, noise "
                f"multiplier {r['noise_multiplier']:.3f}, C {s.dp_max_grad_norm:g}), "
                f"{r['attack']}: {r['psnr']:.2f} dB mean, max {r['psnr_max']:.2f} "
                f"(claim every seed < {DP_CEILING:g} dB: {'met' if ok else 'NOT met'}).")
    if base:
        parts.append(f"A mid-gray image scores {next(iter(base.values()))['gray_psnr']:.2f} dB "
                     "on the same photos.")
    return " ".join(parts)


TABLE_KEYS = ("point", "attack", "psnr", "refused", "psnr_sd", "psnr_min", "psnr_max", "ssim",
              "label_acc", "model_acc", "model_acc_clean", "epsilon", "noise_multiplier")


def write_study_page(out: Path, s: Settings, results: dict[str, Any],
                     plots: list[tuple[str, str]]) -> Path:
    """Writes ``index.html``: setup, headline, plots, the leakage + accuracy table, grids."""
    from gradleak.report import Section, write_page

    acc = results["dp_accounting"]
    sections = [
        Section("Setup", text=(
            f"Model {s.model!r} (untrained, DLG's initialisation), batches of {s.data!r} photos "
            f"at {s.size}x{s.size}, FedSGD, labels not shared; attacks {list(s.attacks)} with "
            f"overrides {s.attack_overrides}; seeds {list(s.seeds)} (photo choice, model "
            "weights, defense randomness and attack). DP-SGD: the noise multiplier is the one "
            "Opacus' get_noise_multiplier gives for the target epsilon, and epsilon is the "
            f"one Opacus' accountant reports, for the utility training ({acc['steps']} steps "
            f"at sample rate {acc['sample_rate']:.4f}, delta {s.dp_delta:g}); the attacked "
            "update is one step of it. Model accuracy: the same architecture on "
            f"{s.utility_data!r} ({s.utility_size}x{s.utility_size} grey, train/holdout "
            f"split), {s.utility_epochs:g} epochs of one-client FL, batch {s.utility_batch}, "
            f"lr {s.utility_lr:g}, trained with and without each defense. Total time "
            f"{results['seconds']:.0f} s.")),
        Section("Headline", text=headline(s, results["summary"])),
        Section("Curves", images=plots),
        Section("Leakage and accuracy per defense (mean over seeds)",
                table=[{k: r.get(k) for k in TABLE_KEYS} for r in results["summary"]]),
    ]
    grids = [(r["grid"], f"{r['attack']}, {r['point']} (seed {r['seed']})")
             for r in results["rows"] if r.get("grid")]
    if grids:
        sections.append(Section("Reconstructions (truth above, reconstruction below)",
                                images=grids))
    sections.append(Section("Files", links=[("results.json", "all numbers (JSON)")]))
    return write_page(out / "index.html", "Defense curves: leakage and accuracy cost",
                      sections, subtitle="gradleak experiment defense-curves")
