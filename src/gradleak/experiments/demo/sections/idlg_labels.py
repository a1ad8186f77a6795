"""iDLG (Zhao et al., 2020): labels read off the last layer's gradient, and the idlg attack."""

from __future__ import annotations

from gradleak.experiments.demo.base import (
    DemoContext,
    SectionResult,
    class_label,
    demo_section,
    row,
    run_attack,
    run_metrics,
)
from gradleak.report.html import Section
from gradleak.run import image_shape

KEY = "idlg_labels"
IDLG = {"iterations": (100, 5), "restarts": (2, 1)}


@demo_section(KEY, "iDLG label recovery", order=40, budgets={"idlg": IDLG})
def idlg_labels(ctx: DemoContext) -> SectionResult:
    """iDLG: labels read off the gradient (one photo per class) and the idlg attack."""
    import gradleak as gl

    n_classes = 10
    images, labels = gl.data.load("sample", size=32, n=n_classes, seed=ctx.seed,
                                  unique_labels=True)
    model = gl.models.create("lenet", num_classes=n_classes, in_shape=image_shape(images))
    table, per_image = [], []
    for i in range(len(images)):
        obs_i, _ = gl.simulate(model, images[i : i + 1], labels[i : i + 1], seed=ctx.seed)
        found = int(gl.recover_labels(obs_i, strategy="idlg")[0])
        true = int(labels[i])
        per_image.append({"image": i, "true label": true, "recovered": found,
                          "correct": found == true})
        table.append({"photo": i + 1, "true class": class_label(true),
                      "recovered class": class_label(found),
                      "correct": "yes" if found == true else "no"})
    acc = sum(r["correct"] for r in per_image) / len(per_image)
    obs, truth = gl.simulate(model, images[:1], labels[:1], share_labels=False, seed=ctx.seed)
    run = run_attack(ctx, obs, truth, attack="idlg", folder=f"{KEY}/attack",
                     title="iDLG on LeNet (labels not shared)",
                     run_config={"model": "lenet", "batch_size": 1, "share_labels": False},
                     **{k: ctx.budget(*v) for k, v in IDLG.items()})
    got = None if run.rec.labels is None else int(run.rec.labels[0])
    true = int(truth.labels[0])
    got_text = "no label" if got is None else class_label(got)
    sec = Section(
        "iDLG label recovery",
        text=(f"With batch size 1, the sign of the last layer's gradient gives the label "
              f"(Zhao et al., 2020). Recovered {sum(r['correct'] for r in per_image)} of "
              f"{len(per_image)} labels correctly (one photo of each class, LeNet, labels not "
              f"shared). The idlg attack on the first photo recovered {got_text} "
              f"(true: {class_label(true)}) and reached {run.psnr:.1f} dB PSNR."),
        table=table,
        images=[(f"{KEY}/attack/grid.png", "idlg attack: truth vs result")],
        links=[(f"{KEY}/attack/index.html", "full report of the idlg attack")],
    )
    return SectionResult(
        [sec],
        metrics={"label_accuracy": acc, "per_image": per_image, "attack": run_metrics(run)
                 | {"recovered_label": got, "true_label": true}},
        rows=[row("iDLG on LeNet", run, label=f"{got} (true {true})"),
              {"part": "iDLG labels, 10 photos", "label": f"{acc:.0%} correct"}],
    )
