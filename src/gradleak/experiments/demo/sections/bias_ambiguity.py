"""Demo section: the bias attack, exact at batch size 1, and the batch-2 ambiguity (the seed's
argument for information discard).

For a first linear layer with bias, row ``i`` of the weight gradient divided by the bias
gradient is ``sum_n g_ni x_n / sum_n g_ni`` (Phong et al., 2017; Geiping et al., 2020, Sec. 4).
With one image that is the image. With two it is a per-row mixture of both: where a ReLU row
fires for one sample only, that sample comes back exactly; where both fire (always, with
sigmoid activations) only an average survives, and the averaging has discarded the rest.
"""

from __future__ import annotations

import torch

from gradleak.experiments.demo.base import DemoContext, SectionResult, demo_section
from gradleak.report.files import save_image
from gradleak.report.grids import compose, psnr_per_image, to_uint8
from gradleak.report.html import Section
from gradleak.safeio import ensure_dir

KEY = "bias_ambiguity"
ACTIVATION_NAMES = {"relu": "ReLU", "sigmoid": "sigmoid"}


def _first_layer_rows(obs: object) -> torch.Tensor:
    """Every row's ratio dL/dW_i / dL/db_i of the first linear layer, as images."""
    from gradleak.attacks.analytic.bias import row_recoveries

    grads = obs.named_update()  # type: ignore[attr-defined]
    names = list(grads)
    rec, _rows = row_recoveries(grads[names[0]], grads[names[1]], bias_threshold=1e-8)
    return rec.reshape(-1, *obs.data_shape).clamp(0, 1)  # type: ignore[attr-defined]


def _best_psnr(candidates: torch.Tensor, truths: torch.Tensor) -> list[float]:
    """For each candidate, its PSNR to the closest true image (candidates may be fewer)."""
    return [max(psnr_per_image(truths, c.expand_as(truths))) for c in candidates]


@demo_section(KEY, "The bias attack and the batch-2 ambiguity", order=50)
def bias_ambiguity(ctx: DemoContext) -> SectionResult:
    """Runs ``bias`` on a 4-layer MLP at batch 1 and 2 (ReLU and sigmoid)."""
    import gradleak as gl

    key = KEY
    folder = ensure_dir(ctx.out / key, root=ctx.out)  # no symlinked subfolder
    images, labels = gl.data.load("sample", size=32, n=2, seed=ctx.seed, unique_labels=True)
    table, rows, names, captions = [], [], [], []
    metrics: dict[str, object] = {}
    model = gl.models.create("mlp", depth=4, width=256, seed=ctx.seed)
    obs, truth = gl.simulate(model, images[:1], labels[:1])
    one = gl.reconstruct(obs, attack="bias")
    err = float((one.images - truth.images).abs().max())
    table.append({"setting": "ReLU MLP, batch 1", "separated": 1,
                  "max abs error": f"{err:.1e}", "PSNR (dB)": "exact"})
    metrics["batch1_max_abs_error"] = err
    for act in ("relu", "sigmoid"):
        model = gl.models.create("mlp", depth=4, width=256, activation=act, seed=ctx.seed)
        obs, truth = gl.simulate(model, images, labels)
        rec = gl.reconstruct(obs, attack="bias")
        best = _best_psnr(rec.images, truth.images)
        sep = int(rec.extras.get("separated", 0))
        mixed = int(rec.extras.get("mixed_rows", 0))
        table.append({"setting": f"{ACTIVATION_NAMES[act]} MLP, batch 2", "separated": sep,
                      "mixed rows": mixed, "PSNR (dB)": f"{sum(best) / len(best):.1f}"})
        metrics[f"batch2_{act}"] = {"separated": sep, "mixed_rows": mixed,
                                    "psnr_each": best}
        row_imgs = _first_layer_rows(obs)[:6]
        rows += [to_uint8(rec.images), to_uint8(row_imgs)]
        names += [f"{ACTIVATION_NAMES[act]}: bias attack",
                  f"{ACTIVATION_NAMES[act]}: single rows"]
        captions += [[f"{p:.0f} dB" for p in best],
                     [f"row {i}" for i in range(len(row_imgs))]]
    picture = compose([to_uint8(images)] + rows, row_names=["truth"] + names,
                      captions=[["", ""]] + captions, title="bias attack, batch 2")
    save_image(folder / "grid.png", picture)
    sec = Section(
        "The bias attack and the batch-2 ambiguity",
        text=("Batch 1: the first layer's weight gradient divided by its bias gradient is the "
              f"input itself (max abs error {err:.1e}). Batch 2: every row is a mixture "
              "of the two inputs weighted by that row's per-sample gradients. ReLU rows that "
              "fire for one sample only give that sample back exactly; with sigmoid every "
              "row mixes both, and only an average is left: the sum over the batch has "
              "discarded what told the images apart."),
        table=table,
        images=[(f"{key}/grid.png", "truth, the attack's candidates, and single-row ratios")],
    )
    return SectionResult([sec], metrics=metrics,
                         rows=[{"part": "bias, batch 1", "PSNR (dB)": "exact",
                                "label": "", "time (s)": ""}])
