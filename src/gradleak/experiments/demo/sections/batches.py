"""The headline's second half: l2 vs cosine at batch 2, 4 and 8 with repeated labels.

The same 4-layer MLP architecture, optimiser and budget as the headline, but the client's
batch holds several photos of only two classes (labels repeat; the server is told them). The
gradient is a sum over the batch, so what told the images apart is partly discarded; this is
where the two distances can differ. Mean PSNR after Hungarian matching, per batch size.
The model is built from its own seed, so this section does not change the others' numbers.
"""

from __future__ import annotations

from typing import Any

from gradleak.experiments.demo.base import (
    AttackRun,
    DemoContext,
    SectionResult,
    demo_section,
    run_attack,
    run_metrics,
)
from gradleak.experiments.demo.sections.headline import MATCHING_FIELD, RECOVERED_DB, TIE_DB
from gradleak.report.grids import save_grid
from gradleak.report.html import Section
from gradleak.run import image_shape

KEY = "mlp_batches"
BATCH_SIZES = (2, 4, 8)
#: The two classes every batch is drawn from (so labels repeat), by name in ``sample``.
CLASSES = ("cat", "flower")
DISTANCES = ("l2", "cosine")
#: (full, quick) iterations: the headline's full budget; a smoke-test budget in quick mode.
BATCH_ITERATIONS = (300, 2)


def describe(table: list[dict[str, Any]]) -> str:
    """What the numbers show per batch size, and how each distance falls with the batch;
    claims no more than the table (one seed, one budget)."""
    parts = []
    for r in table:
        l2, cos = r["l2 PSNR (dB)"], r["cosine PSNR (dB)"]
        pair = f"{l2:.1f} / {cos:.1f} dB"
        if min(l2, cos) >= RECOVERED_DB:
            parts.append(f"batch {r['batch size']}: both recover the images ({pair})")
        elif max(l2, cos) < 15:
            parts.append(f"batch {r['batch size']}: neither recovers the images ({pair})")
        elif abs(l2 - cos) < TIE_DB:
            parts.append(f"batch {r['batch size']}: no difference ({pair})")
        else:
            best = "l2" if l2 > cos else "cosine"
            parts.append(f"batch {r['batch size']}: {best} is ahead ({pair})")
    first, last = table[0], table[-1]
    trend = "; ".join(
        f"{n} goes from {first[f'{n} PSNR (dB)']:.1f} dB at batch {first['batch size']} to "
        f"{last[f'{n} PSNR (dB)']:.1f} dB at batch {last['batch size']}" for n in DISTANCES)
    return "; ".join(parts) + f" (l2 / cosine). As the batch grows, {trend}."


@demo_section(KEY, "l2 vs cosine at batch 2, 4 and 8 with repeated labels", order=20,
              budgets={"batch_iterations": BATCH_ITERATIONS, "batch_sizes": BATCH_SIZES})
def mlp_batches(ctx: DemoContext) -> SectionResult:
    """l2 and cosine matching on the 4-layer MLP for batches of two classes."""
    import gradleak as gl

    iterations = ctx.budget(*BATCH_ITERATIONS)
    table: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    images_shown: list[tuple[str, str]] = []
    rows: list[dict[str, Any]] = []
    for b in BATCH_SIZES:
        images, labels = gl.data.load("sample", size=32, n=b, seed=ctx.seed,
                                      classes=list(CLASSES))
        model = gl.models.create("mlp", num_classes=10, in_shape=image_shape(images),
                                 depth=4, seed=ctx.seed + b)
        obs, truth = gl.simulate(model, images, labels, share_labels=True, seed=ctx.seed)
        runs: dict[str, AttackRun] = {}
        for name in DISTANCES:
            overrides: dict[str, Any] = {"iterations": iterations, "restarts": 1, "priors": {},
                                         MATCHING_FIELD: name}
            runs[name] = run_attack(ctx, obs, truth, attack="ig", folder=None,
                                    title=f"4-layer MLP, batch {b}, {name} matching",
                                    **overrides)
        names = gl.data.info("sample").class_names
        counts = {names[c]: int((labels == c).sum()) for c in sorted(set(labels.tolist()))}
        table.append({"batch size": b,
                      "labels": ", ".join(f"{n}x {name}" for name, n in counts.items()),
                      **{f"{n} PSNR (dB)": r.psnr for n, r in runs.items()}})
        metrics[f"batch_{b}"] = {n: run_metrics(r) for n, r in runs.items()}
        for n, r in runs.items():
            rel = f"{KEY}/batch{b}_{n}.png"
            save_grid(ctx.out / rel, r.rec.images, truth.images, labels=r.rec.labels,
                      truth_labels=truth.labels, title=f"batch {b}, {n} matching: "
                                                       f"{r.psnr:.1f} dB")
            images_shown.append((rel, f"batch {b}, {n} matching"))
            rows.append({"part": f"MLP batch {b}, {n}", "PSNR (dB)": r.psnr, "SSIM": r.ssim,
                         "label": "", "time (s)": r.wall_time})
    sec = Section(
        "l2 vs cosine at batch 2, 4 and 8 (repeated labels)",
        text=(f"The headline's setting ({iterations} iterations, labels known, no prior) with "
              f"batches drawn from two classes only ({' and '.join(CLASSES)}), so labels "
              "repeat. The update is a sum over the batch: what told the images apart is "
              f"partly discarded. Mean PSNR after matching (seed {ctx.seed}): "
              f"{describe(table)}"),
        table=table,
        images=images_shown,
    )
    return SectionResult([sec], metrics=metrics, rows=rows)
