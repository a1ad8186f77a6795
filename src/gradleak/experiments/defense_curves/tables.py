"""``defense-curves``' tables: leakage and accuracy per defense, DP per seed, adaptive margins.

Each table is a list of row mappings (rendered in the HTML page and in ``tables.md``).
"""

from __future__ import annotations

from typing import Any

from gradleak.experiments.defense_curves.settings import Settings

#: the issue's ceiling for DP-SGD at epsilon <= 8 (a mid-gray image scores about 12 dB)
DP_CEILING, DP_EPSILON = 12.0, 8.0


def per_seed(values: list[float | None]) -> str:
    """``"19.80 / 18.31 / 19.88"`` (a dash for a missing run)."""
    return " / ".join("-" if v is None else f"{v:.2f}" for v in values)


def _by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    out: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for r in rows:
        out.setdefault((r["point"], r["attack"]), {})[r["seed"]] = r
    return out


def adaptive_pairs(s: Settings) -> list[tuple[str, str]]:
    """(plain, adaptive) attack labels: an ``adaptive=True`` label and its recipe's label."""
    pairs = []
    for label in s.attacks:
        recipe = s.attack_recipes.get(label, label)
        if (s.attack_overrides.get(label, {}).get("adaptive") and recipe != label
                and recipe in s.attacks):
            pairs.append((recipe, label))
    return pairs


def leakage_table(s: Settings, points: list[dict[str, Any]], rows: list[dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    """One row per defense point: per attack mean PSNR (per seed), SSIM, label accuracy;
    the Opacus epsilon; the model's accuracy with the defense and without."""
    runs = _by_key(rows)
    out = []
    for p in points:
        first = next((r for r in rows if r["point"] == p["point"]), {})
        row: dict[str, Any] = {"defense": p["point"], "epsilon (Opacus)": first.get("epsilon")}
        for a in s.attacks:
            seeds = runs.get((p["point"], a))
            ok = [r for r in (seeds or {}).values() if r.get("psnr") is not None]
            if not seeds:
                cell, ssim, lab = "not run", None, None
            elif not ok:
                cell, ssim, lab = "refused", None, None
            else:
                mean = sum(r["psnr"] for r in ok) / len(ok)
                cell = f"{mean:.2f} ({per_seed([seeds[k].get('psnr') for k in sorted(seeds)])})"
                ssim = sum(r["ssim"] for r in ok) / len(ok)
                lab = sum(r["label_acc"] for r in ok) / len(ok)
            row.update({f"{a} PSNR dB (per seed)": cell, f"{a} SSIM": ssim,
                        f"{a} label acc": lab})
        row["model acc"] = p.get("model_acc")
        row["model acc, no defense"] = p.get("model_acc_clean")
        out.append(row)
    return out


def dp_table(s: Settings, points: list[dict[str, Any]], rows: list[dict[str, Any]]
             ) -> list[dict[str, Any]]:
    """DP-SGD points (and the baseline) by epsilon: every attack's PSNR on every seed and
    whether all seeds stay below the mid-gray ceiling."""
    runs = _by_key(rows)
    out = []
    for p in points:
        if p["axis"] not in ("none", "dp"):
            continue
        first = next((r for r in rows if r["point"] == p["point"]), {})
        for a in s.attacks:
            seeds = runs.get((p["point"], a))
            if not seeds:
                continue
            ps = [seeds[k].get("psnr") for k in sorted(seeds)]
            got = [v for v in ps if v is not None]
            out.append({"defense": p["point"], "epsilon (Opacus)": first.get("epsilon"),
                        "noise multiplier": first.get("noise_multiplier"), "attack": a,
                        "seeds": " / ".join(str(k) for k in sorted(seeds)),
                        "PSNR dB per seed": per_seed(ps),
                        "max PSNR dB": max(got) if got else None,
                        f"every seed < {DP_CEILING:g} dB": bool(got) and max(got) < DP_CEILING,
                        "model acc": p.get("model_acc"),
                        "epsilon of that training (Opacus)": p.get("utility_epsilon")})
    return out


def adaptive_table(s: Settings, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain vs adaptive PSNR on the same seeds, per point where both ran, and the margin."""
    runs = _by_key(rows)
    points = list(dict.fromkeys(r["point"] for r in rows))
    out = []
    for plain, adaptive in adaptive_pairs(s):
        for point in points:
            a, b = runs.get((point, plain), {}), runs.get((point, adaptive), {})
            seeds = sorted(k for k in set(a) & set(b)
                           if a[k].get("psnr") is not None and b[k].get("psnr") is not None)
            if not seeds:
                continue
            pa = [a[k]["psnr"] for k in seeds]
            pb = [b[k]["psnr"] for k in seeds]
            margins = [y - x for x, y in zip(pa, pb, strict=True)]
            out.append({"defense": point, "plain": plain, "adaptive": adaptive,
                        "seeds": " / ".join(str(k) for k in seeds),
                        "plain PSNR dB per seed": per_seed(pa),
                        "adaptive PSNR dB per seed": per_seed(pb),
                        "margin dB per seed": per_seed(margins),
                        "mean margin dB": sum(margins) / len(margins),
                        "adaptive better on": f"{sum(m > 0 for m in margins)}/{len(seeds)} seeds"})
    return out


def markdown(table: list[dict[str, Any]]) -> str:
    """A list of row mappings as a GitHub markdown table (the page's number format)."""
    from gradleak.report.html import fmt

    if not table:
        return "(no rows)\n"
    cols: list[str] = []
    for r in table:
        cols += [c for c in r if c not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in table]
    return "\n".join(lines) + "\n"
