"""The headline: l2 vs cosine gradient matching on a 4-layer MLP at batch size 1.

One bundled photo, labels known to the server, no image prior; the same optimiser, learning
rate and iteration budget, once matching gradients by squared l2 distance (DLG, Zhu et al.,
2019) and once by cosine distance (Inverting Gradients, Geiping et al., 2020). At batch 1
both reach about 60 dB at the full budget (as the seed reports), so no winner is claimed;
the batch sizes where they differ are the next section's.
"""

from __future__ import annotations

from typing import Any

from gradleak.experiments.demo.base import (
    AttackRun,
    DemoContext,
    SectionResult,
    class_label,
    demo_section,
    row,
    run_attack,
    run_metrics,
)
from gradleak.report.files import save_image
from gradleak.report.gifs import GifPanel, save_side_by_side_gif
from gradleak.report.grids import compose, psnr_per_image, to_uint8
from gradleak.report.html import Section
from gradleak.run import image_shape

KEY = "mlp_l2_vs_cosine"
#: The comparison's shared budget: same optimiser, lr and iterations for both distances.
MLP_ITERATIONS = (300, 12)  # (full, quick)
MATCHING_FIELD = "distance"  # the recipe field choosing the gradient distance
#: Both above this PSNR: both recover the image (no winner is named).
RECOVERED_DB = 30.0
#: A PSNR difference below this is not called a difference.
TIE_DB = 1.0


def verdict(psnr: dict[str, float]) -> str:
    """What the measured PSNRs support saying (never more)."""
    (a, pa), (b, pb) = sorted(psnr.items(), key=lambda kv: -kv[1])
    if pb >= RECOVERED_DB:
        return ("both recover the image almost exactly, so at batch size 1 this comparison "
                "has no winner")
    if pa < 15:
        return "neither recovers the image at this budget"
    if pa - pb < TIE_DB:
        return "the two are within a decibel of each other: no winner"
    return f"{a} matching recovers the image better at this budget"


def headline_text(iterations: int, runs: dict[str, AttackRun]) -> str:
    """The section's headline: the setting, both numbers, and the verdict they support."""
    l2, cos = runs["l2"], runs["cosine"]
    return (
        f"One bundled photo, batch size 1, labels known, no image prior, {iterations} "
        f"iterations of the same optimiser (the ig recipe's signed Adam and step schedule) for "
        f"both; only the gradient distance differs. l2 matching reaches {l2.psnr:.1f} dB PSNR, "
        f"cosine matching {cos.psnr:.1f} dB: "
        f"{verdict({'l2': l2.psnr, 'cosine': cos.psnr})}."
    )


@demo_section(KEY, "l2 vs cosine matching on a 4-layer MLP", order=10,
              budgets={"mlp_iterations": MLP_ITERATIONS})
def mlp_l2_vs_cosine(ctx: DemoContext) -> SectionResult:
    """The headline: l2 vs cosine gradient matching on the 4-layer MLP (batch 1)."""
    import gradleak as gl

    images, labels = gl.data.load("sample", size=32, n=1, seed=ctx.seed)
    model = gl.models.create("mlp", num_classes=10, in_shape=image_shape(images), depth=4)
    obs, truth = gl.simulate(model, images, labels, share_labels=True, seed=ctx.seed)
    common: dict[str, Any] = {"iterations": ctx.budget(*MLP_ITERATIONS), "restarts": 1,
                              "priors": {}}
    cfg = {"model": "mlp", "depth": 4, "batch_size": 1, "share_labels": True}
    runs = {
        name: run_attack(ctx, obs, truth, attack="ig", folder=f"{KEY}/{name}",
                         title=f"4-layer MLP, {name} matching", run_config=cfg,
                         **common, **{MATCHING_FIELD: name})
        for name in ("l2", "cosine")
    }
    gif = f"{KEY}/l2_vs_cosine.gif"
    save_side_by_side_gif(ctx.out / gif, [GifPanel(r.rec, f"{n} matching")
                                          for n, r in runs.items()],
                          truth.images, title="4-layer MLP")
    grid = f"{KEY}/l2_vs_cosine.png"
    pics = [truth.images] + [r.rec.images for r in runs.values()]
    caps = [[class_label(int(truth.labels[0]))]] + [
        [f"{psnr_per_image(truth.images, r.rec.images)[0]:.1f} dB"] for r in runs.values()
    ]
    save_image(ctx.out / grid, compose([to_uint8(x) for x in pics],
                                       row_names=["truth", "l2", "cosine"], captions=caps))
    said = verdict({n: r.psnr for n, r in runs.items()})
    sec = Section(
        "Headline: l2 vs cosine gradient matching on a 4-layer MLP",
        text=headline_text(common["iterations"], runs),
        images=[(gif, "progress of both attacks (truth on the left; each frame's PSNR)"),
                (grid, "final reconstructions")],
        table=[{"matching": n, "PSNR (dB)": r.psnr, "SSIM": r.ssim, "time (s)": r.wall_time}
               for n, r in runs.items()],
        links=[(f"{r.folder}/index.html", f"full report: {n} matching") for n, r in runs.items()],
    )
    return SectionResult(
        [sec],
        metrics={n: run_metrics(r) for n, r in runs.items()} | {"verdict": said},
        rows=[row(f"MLP, {n} matching", r) for n, r in runs.items()],
    )
