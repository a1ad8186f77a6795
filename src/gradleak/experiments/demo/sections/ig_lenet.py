"""Inverting Gradients (the ``ig`` recipe; Geiping et al., NeurIPS 2020) on DLG's LeNet."""

from __future__ import annotations

from gradleak.experiments.demo.base import (
    DemoContext,
    SectionResult,
    demo_section,
    row,
    run_attack,
    run_metrics,
)
from gradleak.report.html import Section
from gradleak.run import image_shape

KEY = "ig_lenet"
IG_LENET = {"iterations": (1000, 10), "restarts": (2, 1)}


@demo_section(KEY, "Inverting Gradients on LeNet", order=30, budgets={"ig_lenet": IG_LENET})
def ig_lenet(ctx: DemoContext) -> SectionResult:
    """Inverting Gradients (the ``ig`` recipe) on DLG's LeNet, batch 1."""
    import gradleak as gl

    images, labels = gl.data.load("sample", size=32, n=1, seed=ctx.seed)
    model = gl.models.create("lenet", num_classes=10, in_shape=image_shape(images))
    obs, truth = gl.simulate(model, images, labels, share_labels=True, seed=ctx.seed)
    overrides = {k: ctx.budget(*v) for k, v in IG_LENET.items()}
    run = run_attack(ctx, obs, truth, attack="ig", folder=KEY, title="IG on LeNet",
                     run_config={"model": "lenet", "batch_size": 1, "share_labels": True},
                     **overrides)
    sec = Section(
        "Inverting Gradients on LeNet",
        text=(f"The ig recipe (cosine matching, total-variation prior, signed Adam, step "
              f"schedule; labels shared) with "
              f"{overrides['iterations']} iterations and {overrides['restarts']} restart(s) "
              f"on DLG's sigmoid LeNet: PSNR {run.psnr:.1f} dB, SSIM {run.ssim:.3f}."
              + (" At this budget IG does not recover the image on this sigmoid network: "
                 "the cosine distance falls while the picture stays close to noise."
                 if run.psnr < 15 else "")),
        images=[(f"{KEY}/progress.gif", "progress (each frame's PSNR)"),
                (f"{KEY}/grid.png", "truth vs result")],
        links=[(f"{KEY}/index.html", "full report")],
    )
    return SectionResult([sec], metrics=run_metrics(run), rows=[row("IG on LeNet", run)])
