"""A generative prior against no prior and TV, on the same held-out batch (GIAS: Jeon et al.,
"Gradient Inversion with Generative Image Prior", NeurIPS 2021)."""

from __future__ import annotations

from typing import Any

from gradleak.experiments.demo.base import (
    AttackRun,
    DemoContext,
    SectionResult,
    demo_section,
    row,
    run_attack,
    run_metrics,
)
from gradleak.report.html import Section
from gradleak.run import image_shape

KEY = "generative_prior"
DOMAIN = "digits"
BATCH = 4
#: (full, quick) budgets; at full budget the three runs take about the same CPU time
#: (measured on one thread: no prior 13.0 s, TV 10.8 s, GIAS 300 + 300 iterations 7.2 s)
BUDGETS = {"pixels": (1500, 10), "gias_latent": (400, 5), "gias_weights": (400, 5)}


@demo_section(KEY, "Generative prior", order=60, budgets={KEY: BUDGETS})
def generative_prior(ctx: DemoContext) -> SectionResult:
    """The same held-out digits attacked with no prior, TV and the shipped digits prior."""
    import gradleak as gl

    images, labels = gl.data.load(DOMAIN, size=32, n=BATCH, split="holdout", seed=ctx.seed)
    model = gl.models.create("lenet", num_classes=10, in_shape=image_shape(images))
    obs, truth = gl.simulate(model, images, labels, share_labels=True, seed=ctx.seed)
    pixels = ctx.budget(*BUDGETS["pixels"])
    runs: list[tuple[str, str, dict[str, Any]]] = [
        ("no prior", "ig", {"priors": {}, "iterations": pixels, "restarts": 2}),
        ("total variation", "ig", {"iterations": pixels, "restarts": 2}),
        ("generative prior (GIAS)", "gias",
         {"generative_prior": DOMAIN, "iterations": ctx.budget(*BUDGETS["gias_latent"]),
          "weight_iterations": ctx.budget(*BUDGETS["gias_weights"]), "restarts": 2}),
    ]
    done: list[tuple[str, AttackRun]] = []
    for title, attack, overrides in runs:
        folder = f"{KEY}/{attack}_{len(done)}"
        done.append((title, run_attack(ctx, obs, truth, attack=attack, folder=folder,
                                       title=f"{title}, batch {BATCH}",
                                       run_config={"model": "lenet", "data": DOMAIN,
                                                   "batch_size": BATCH}, **overrides)))
    text = (f"{BATCH} held-out handwritten digits (scikit-learn's digits, 32 px; the prior "
            "never saw them) seen through LeNet's gradient, labels shared. "
            + "; ".join(f"{t}: {r.psnr:.1f} dB" for t, r in done)
            + ". The generative prior was trained on the other digits (`gradleak prior "
              "train --data digits`); GIAS searches its latent codes, then fine-tunes one "
              "copy of the generator per image.")
    sec = Section(
        "Generative prior: no prior vs TV vs a trained generator",
        text=text,
        images=[(f"{r.folder}/grid.png", f"{t}: {r.psnr:.1f} dB") for t, r in done],
        links=[(f"{r.folder}/index.html", f"{t} report") for t, r in done],
    )
    metrics = {t: run_metrics(r) for t, r in done}
    return SectionResult([sec], metrics=metrics, rows=[row(t, r) for t, r in done])
