"""``defense-curves``' plots, headline and HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradleak.experiments.defense_curves.settings import Settings
from gradleak.experiments.defense_curves.tables import (
    DP_CEILING,
    DP_EPSILON,
    adaptive_table,
    dp_table,
    leakage_table,
    markdown,
    per_seed,
)

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
#: the issue's thresholds (DP's ceiling and epsilon: :mod:`.tables`)
IDLG_FLOOR, IG_FLOOR = 35.0, 20.0


def x_of(row: dict[str, Any]) -> float:
    """The x value of a summary row: the Opacus epsilon on the DP axis, else the axis value."""
    if row["axis"] == "dp" and row.get("epsilon") is not None:
        return float(row["epsilon"])
    return float(row["value"])


def write_plots(out: Path, s: Settings, summary: list[dict[str, Any]],
                points: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """One PNG per (axis, metric): the metric against defense strength, one line per attack
    that runs on the axis (model accuracy: one line, from the points' utility training)."""
    from gradleak.report import save_curves

    base = {r["attack"]: r for r in summary if r["axis"] == "none"}
    gray = next((r["gray_psnr"] for r in base.values()), None)
    eps = {r["point"]: r.get("epsilon") for r in summary}
    made = []
    for axis in s.axes:
        xlabel, xscale = AXIS_PLOT[axis]
        for metric, (ylabel, ylim) in METRICS.items():
            series: dict[str, tuple[list[float], list[float | None]]] = {}
            if metric == "model_acc":
                pts = sorted((p for p in points if p["axis"] == axis and "model_acc" in p),
                             key=lambda p: x_of({**p, "epsilon": eps.get(p["point"])}))
                if pts:
                    series[s.model] = ([x_of({**p, "epsilon": eps.get(p["point"])})
                                        for p in pts], [p["model_acc"] for p in pts])
            for attack in s.attacks if metric != "model_acc" else ():
                rows = sorted((r for r in summary if r["axis"] == axis
                               and r["attack"] == attack), key=x_of)
                xs = [x_of(r) for r in rows]
                ys = [r.get(metric) for r in rows]
                if axis == "batch" and attack in base:  # batch 1 is the baseline
                    xs, ys = [1.0, *xs], [base[attack].get(metric), *ys]
                if any(y is not None for y in ys):
                    series[attack] = (xs, ys)
            if not series:
                continue
            name = f"{axis}_{metric}.png"
            line = None
            if metric == "psnr" and axis == "dp":  # the ceiling for DP-SGD
                line = (DP_CEILING, f"{DP_CEILING:g} dB ceiling (a mid-gray image: "
                        f"{gray:.1f} dB on these photos)" if gray is not None else
                        f"{DP_CEILING:g} dB ceiling")
            elif metric == "psnr" and gray is not None:
                line = (gray, "mid-gray image")
            save_curves(out / name, series, xlabel=xlabel, ylabel=ylabel,
                        title=f"{ylabel} vs {xlabel}", xscale=xscale, ylim=ylim, hline=line)
            made.append((name, f"{ylabel} vs {xlabel}"))
    return made


def headline(s: Settings, summary: list[dict[str, Any]], adaptive: list[dict[str, Any]]
             ) -> str:
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
                f"{r['attack']}: {r['psnr']:.2f} dB mean, per seed "
                f"{per_seed(r['psnr_per_seed'])}, max {r['psnr_max']:.2f} "
                f"(claim every seed < {DP_CEILING:g} dB: {'met' if ok else 'NOT met'}).")
    for r in adaptive:
        parts.append(f"{r['adaptive']} vs {r['plain']} at {r['defense']}: "
                     f"{r['mean margin dB']:+.2f} dB mean margin, better on "
                     f"{r['adaptive better on']}.")
    if base:
        parts.append(f"A mid-gray image scores {next(iter(base.values()))['gray_psnr']:.2f} dB "
                     "on the same photos (mean over the seeds).")
    return " ".join(parts)


def write_study_page(out: Path, s: Settings, results: dict[str, Any],
                     plots: list[tuple[str, str]]) -> Path:
    """Writes ``index.html`` (setup, headline, plots, the tables, grids) and ``tables.md``."""
    from gradleak.report import Section, write_page

    acc = results["dp_accounting"]
    rows, pts = results["rows"], results["points"]
    tables = {
        "Leakage and model accuracy per defense (PSNR: mean over seeds, then per seed)":
            leakage_table(s, pts, rows),
        f"DP-SGD per seed (mid-gray ceiling {DP_CEILING:g} dB; the claim is for epsilon <= "
        f"{DP_EPSILON:g}, delta {s.dp_delta:g})": dp_table(s, pts, rows),
        "Adaptive vs plain attack on the same seeds": adaptive_table(s, rows),
    }
    adaptive = tables["Adaptive vs plain attack on the same seeds"]
    where = {a: list(v) for a, v in s.attack_points.items() if a in s.attacks}
    sections = [
        Section("Setup", text=(
            f"Model {s.model!r} (untrained, DLG's initialisation), batches of {s.data!r} photos "
            f"at {s.size}x{s.size}, FedSGD, labels not shared; attacks {list(s.attacks)} "
            f"(recipes {s.attack_recipes}) with overrides {s.attack_overrides}; attacks run "
            f"only on these points: {where} (the others on every point); seeds "
            f"{list(s.seeds)} (photo choice, model weights, defense randomness and attack). "
            "DP-SGD: the noise multiplier is the one Opacus' get_noise_multiplier gives for "
            "the target epsilon, and epsilon is the one Opacus' accountant reports, for the "
            f"utility training ({acc['steps']} steps at sample rate {acc['sample_rate']:.4f}, "
            f"delta {s.dp_delta:g}); the attacked update is one step of it. Model accuracy: "
            f"the same architecture on {s.utility_data!r} ({s.utility_size}x{s.utility_size} "
            f"grey, train/holdout split), {s.utility_epochs:g} epochs of one-client FL, batch "
            f"{s.utility_batch}, lr {s.utility_lr:g}, seed {results['seed']}, trained once per "
            "defense setting (shared by every attack and seed) and once without. Total time "
            f"{results['seconds']:.0f} s ({results['cached_results']} results reused from "
            f"cache.jsonl; the attack runs shown took {results['attack_seconds']:.0f} s when "
            "they ran).")),
        Section("Headline", text=headline(s, results["summary"], adaptive)),
        *[Section(title, table=table) for title, table in tables.items() if table],
        Section("Curves", images=plots),
    ]
    grids = [(r["grid"], f"{r['attack']}, {r['point']} (seed {r['seed']})")
             for r in rows if r.get("grid")]
    if grids:
        sections.append(Section("Reconstructions (truth above, reconstruction below)",
                                images=grids))
    (out / "tables.md").write_text("".join(f"## {title}\n\n{markdown(table)}\n"
                                           for title, table in tables.items()))
    sections.append(Section("Files", links=[("results.json", "all numbers (JSON)"),
                                            ("tables.md", "the tables (markdown)")]))
    return write_page(out / "index.html", "Defense curves: leakage and accuracy cost",
                      sections, subtitle="gradleak experiment defense-curves")
