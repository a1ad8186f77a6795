"""The demo (``gradleak demo``): the seed's headline experiment and two classics, one report.

Sections, run in order (see :data:`DEMO_SECTIONS`):

1. **l2 vs cosine on a 4-layer MLP** (the headline). One bundled photo, batch size 1, labels
   known to the server, no image prior; the same optimiser, learning rate and iteration
   budget, once matching gradients by squared l2 distance (DLG, Zhu et al., 2019) and once
   by cosine distance (Inverting Gradients, Geiping et al., 2020). Their progress GIFs are
   shown side by side with their PSNR.
2. **Inverting Gradients on LeNet**: the ``ig`` recipe (cosine matching + total variation)
   against DLG's sigmoid LeNet.
3. **iDLG label recovery**: the label read off the last layer's gradient (Zhao et al., 2020)
   versus the true label, for one photo of every class, and the ``idlg`` attack on one.

Each attack run gets its own report folder (``gradleak.report.write_run``); the top-level
``index.html`` links them and embeds the GIFs and grids; ``metrics.json`` holds every number.

Example:
    >>> from gradleak.demo import run_demo
    >>> result = run_demo("runs/demo", quick=True)  # doctest: +SKIP
    >>> result.index
    PosixPath('runs/demo/index.html')
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gradleak.attacks.base import Callback
from gradleak.report.gifs import GifPanel, save_side_by_side_gif
from gradleak.report.grids import compose, psnr_per_image, to_uint8
from gradleak.report.html import Section, write_page
from gradleak.report.run import to_jsonable, write_run
from gradleak.safeio import check_out_dir, write_json, write_with
from gradleak.types import GroundTruth, Observation, Reconstruction

#: Makes a progress callback for a named attack run (None: no progress display).
CallbackFactory = Callable[[str], Callback | None]


@dataclass
class DemoContext:
    """What every demo section gets.

    Attributes:
        out: the demo's output folder; a section writes under ``out / section.key``.
        quick: smoke-test budgets (seconds in total) instead of the full ones.
        seed: seed of data choice and attacks.
        callback: makes a progress callback for an attack run, given a description.
        log: prints a line of progress text.
    """

    out: Path
    quick: bool = False
    seed: int = 0
    callback: CallbackFactory = lambda _name: None  # noqa: E731
    log: Callable[[str], None] = lambda _line: None  # noqa: E731

    def budget(self, full: int, quick: int) -> int:
        """``quick`` in quick mode, else ``full``."""
        return quick if self.quick else full


@dataclass
class SectionResult:
    """What a section returns.

    Attributes:
        sections: HTML sections for the top-level page; their file references are relative
            to ``DemoContext.out``.
        metrics: numbers stored under the section's key in the demo's ``metrics.json``.
        rows: rows of the console summary table (keys: part, PSNR (dB), SSIM, label,
            time (s)).
    """

    sections: list[Section]
    metrics: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DemoSection:
    """A registered demo part: ``run(ctx)`` writes under ``ctx.out / key``."""

    key: str
    title: str
    run: Callable[[DemoContext], SectionResult]


@dataclass
class DemoResult:
    """The demo's outcome: the page, the console rows, all metrics and the wall time."""

    index: Path
    rows: list[dict[str, Any]]
    metrics: dict[str, Any]
    wall_time: float


@dataclass
class AttackRun:
    """One attack run inside a section, with its scores and report folder."""

    rec: Reconstruction
    truth: GroundTruth
    scores: Any
    folder: str
    wall_time: float

    @property
    def psnr(self) -> float:
        return float(self.scores["psnr"])

    @property
    def ssim(self) -> float:
        return float(self.scores["ssim"])


def run_attack(
    ctx: DemoContext,
    obs: Observation,
    truth: GroundTruth,
    *,
    attack: str,
    folder: str,
    title: str,
    run_config: dict[str, Any] | None = None,
    **overrides: Any,
) -> AttackRun:
    """Runs ``attack`` on ``obs``, scores it and writes its report to ``ctx.out / folder``."""
    import gradleak as gl

    ctx.log(f"demo: {title}")
    t0 = time.perf_counter()
    rec = gl.reconstruct(obs, attack=attack, seed=ctx.seed, callback=ctx.callback(title),
                         **overrides)
    wall = time.perf_counter() - t0
    scores = gl.evaluate(rec, truth)
    write_run(ctx.out / folder, rec, truth, scores, title=title,
              config={**(run_config or {}), "attack": attack, "overrides": overrides,
                      "seed": ctx.seed, "quick": ctx.quick})
    return AttackRun(rec, truth, scores, folder, wall)


def _row(part: str, run: AttackRun, label: str = "") -> dict[str, Any]:
    return {"part": part, "PSNR (dB)": run.psnr, "SSIM": run.ssim, "label": label,
            "time (s)": run.wall_time}


def _run_metrics(run: AttackRun) -> dict[str, Any]:
    return {"psnr": run.psnr, "ssim": run.ssim, "wall_time_s": run.wall_time,
            "iterations": run.rec.config.get("iterations"), "report": f"{run.folder}/index.html"}


# ------------------------------------------------------------------------------ sections
#: The headline comparison's shared settings: same optimiser, lr and budget for both.
MLP_ITERATIONS = (300, 12)  # (full, quick)
MATCHING_FIELD = "distance"  # the recipe field choosing the gradient distance


def mlp_l2_vs_cosine(ctx: DemoContext) -> SectionResult:
    """The headline: l2 vs cosine gradient matching on the 4-layer MLP (batch 1)."""
    import gradleak as gl

    key = "mlp_l2_vs_cosine"
    images, labels = gl.data.load("sample", size=32, n=1, seed=ctx.seed)
    model = gl.models.create("mlp", num_classes=10, in_shape=tuple(images.shape[1:]), depth=4)
    obs, truth = gl.simulate(model, images, labels, share_labels=True, seed=ctx.seed)
    common: dict[str, Any] = {
        "iterations": ctx.budget(*MLP_ITERATIONS),
        "restarts": 1,
        "priors": {},
    }
    cfg = {"model": "mlp", "depth": 4, "batch_size": 1, "share_labels": True}
    runs = {
        name: run_attack(ctx, obs, truth, attack="ig", folder=f"{key}/{name}",
                         title=f"4-layer MLP, {name} matching", run_config=cfg,
                         **common, **{MATCHING_FIELD: name})
        for name in ("l2", "cosine")
    }
    gif = f"{key}/l2_vs_cosine.gif"
    save_side_by_side_gif(
        ctx.out / gif,
        [GifPanel(r.rec, f"{n} matching: PSNR {r.psnr:.1f} dB") for n, r in runs.items()],
        truth.images,
        title="4-layer MLP",
    )
    grid = f"{key}/l2_vs_cosine.png"
    rows = [truth.images] + [r.rec.images for r in runs.values()]
    caps = [[f"label {int(truth.labels[0])}"]] + [
        [f"{psnr_per_image(truth.images, r.rec.images)[0]:.1f} dB"] for r in runs.values()
    ]
    picture = compose([to_uint8(x) for x in rows], row_names=["truth", "l2", "cosine"],
                      captions=caps)
    write_with(ctx.out / grid, lambda f: picture.save(f, format="PNG"), root=ctx.out)
    l2, cos = runs["l2"], runs["cosine"]
    better = "cosine" if cos.psnr > l2.psnr else "l2"
    if min(l2.psnr, cos.psnr) >= 30:
        verdict = (f"both recover the image almost exactly; {better} matching gets closer")
    elif max(l2.psnr, cos.psnr) >= 15:
        verdict = f"{better} matching recovers the image better here"
    else:
        verdict = "neither recovers the image at this budget"
    text = (
        f"One bundled photo, batch size 1, labels known, no image prior, "
        f"{common['iterations']} iterations of the same optimiser (the ig recipe's signed "
        f"Adam and step schedule) for both; only the gradient distance differs. l2 matching "
        f"reaches {l2.psnr:.1f} dB PSNR, cosine matching {cos.psnr:.1f} dB: {verdict}."
    )
    sec = Section(
        "Headline: l2 vs cosine gradient matching on a 4-layer MLP",
        text=text,
        images=[(gif, "progress of both attacks (truth on the left)"),
                (grid, "final reconstructions")],
        table=[{"matching": n, "PSNR (dB)": r.psnr, "SSIM": r.ssim, "time (s)": r.wall_time}
               for n, r in runs.items()],
        links=[(f"{r.folder}/index.html", f"full report: {n} matching") for n, r in runs.items()],
    )
    return SectionResult(
        [sec],
        metrics={n: _run_metrics(r) for n, r in runs.items()} | {"better": better},
        rows=[_row(f"MLP, {n} matching", r) for n, r in runs.items()],
    )


IG_LENET = {"iterations": (1000, 10), "restarts": (2, 1)}


def ig_lenet(ctx: DemoContext) -> SectionResult:
    """Inverting Gradients (the ``ig`` recipe) on DLG's LeNet, batch 1."""
    import gradleak as gl

    key = "ig_lenet"
    images, labels = gl.data.load("sample", size=32, n=1, seed=ctx.seed)
    model = gl.models.create("lenet", num_classes=10, in_shape=tuple(images.shape[1:]))
    obs, truth = gl.simulate(model, images, labels, share_labels=True, seed=ctx.seed)
    overrides = {k: ctx.budget(*v) for k, v in IG_LENET.items()}
    run = run_attack(ctx, obs, truth, attack="ig", folder=key, title="IG on LeNet",
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
        images=[(f"{key}/progress.gif", "progress"), (f"{key}/grid.png", "truth vs result")],
        links=[(f"{key}/index.html", "full report")],
    )
    return SectionResult([sec], metrics=_run_metrics(run), rows=[_row("IG on LeNet", run)])


IDLG = {"iterations": (100, 5), "restarts": (2, 1)}


def idlg_labels(ctx: DemoContext) -> SectionResult:
    """iDLG: labels read off the gradient (one photo per class) and the idlg attack."""
    import gradleak as gl

    key = "idlg_labels"
    n_classes = 10
    images, labels = gl.data.load("sample", size=32, n=n_classes, seed=ctx.seed,
                                  unique_labels=True)
    model = gl.models.create("lenet", num_classes=n_classes, in_shape=tuple(images.shape[1:]))
    table = []
    for i in range(len(images)):
        obs_i, _ = gl.simulate(model, images[i : i + 1], labels[i : i + 1], seed=ctx.seed)
        found = int(gl.recover_labels(obs_i, strategy="idlg")[0])
        table.append({"image": i, "true label": int(labels[i]), "recovered": found,
                      "correct": found == int(labels[i])})
    acc = sum(r["correct"] for r in table) / len(table)
    obs, truth = gl.simulate(model, images[:1], labels[:1], share_labels=False, seed=ctx.seed)
    run = run_attack(ctx, obs, truth, attack="idlg", folder=f"{key}/attack",
                     title="iDLG on LeNet (labels not shared)",
                     run_config={"model": "lenet", "batch_size": 1, "share_labels": False},
                     **{k: ctx.budget(*v) for k, v in IDLG.items()})
    got = None if run.rec.labels is None else int(run.rec.labels[0])
    true = int(truth.labels[0])
    sec = Section(
        "iDLG label recovery",
        text=(f"With batch size 1, the sign of the last layer's gradient gives the label "
              f"(Zhao et al., 2020). Recovered {sum(r['correct'] for r in table)} of "
              f"{len(table)} labels correctly (one photo of each class, LeNet, labels not "
              f"shared). The idlg attack on the first photo recovered label {got} "
              f"(true {true}) and reached {run.psnr:.1f} dB PSNR."),
        table=table,
        images=[(f"{key}/attack/grid.png", "idlg attack: truth vs result")],
        links=[(f"{key}/attack/index.html", "full report of the idlg attack")],
    )
    return SectionResult(
        [sec],
        metrics={"label_accuracy": acc, "per_image": table, "attack": _run_metrics(run)
                 | {"recovered_label": got, "true_label": true}},
        rows=[_row("iDLG on LeNet", run, label=f"{got} (true {true})"),
              {"part": "iDLG labels, 10 photos", "label": f"{acc:.0%} correct"}],
    )


# ------------------------------------------------------------------------------ the hook
# DEMO SECTIONS HOOK: the demo runs these in order. To add a part (e.g. the analytic `bias`
# attack's batch-2 ambiguity), write `def my_part(ctx: DemoContext) -> SectionResult` that
# writes under `ctx.out / "my_part"` and append it here:
#     DEMO_SECTIONS.append(DemoSection("my_part", "Title", my_part))
DEMO_SECTIONS: list[DemoSection] = [
    DemoSection("mlp_l2_vs_cosine", "l2 vs cosine matching on a 4-layer MLP", mlp_l2_vs_cosine),
    DemoSection("ig_lenet", "Inverting Gradients on LeNet", ig_lenet),
    DemoSection("idlg_labels", "iDLG label recovery", idlg_labels),
]


def _bias_section(ctx: DemoContext) -> SectionResult:
    from gradleak.demo_bias import bias_ambiguity

    return bias_ambiguity(ctx)


DEMO_SECTIONS.append(
    DemoSection("bias_ambiguity", "The bias attack and the batch-2 ambiguity", _bias_section)
)


def run_demo(
    out: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    sections: Sequence[DemoSection] | None = None,
    callback: CallbackFactory | None = None,
    log: Callable[[str], None] | None = None,
    threads: int | None = 1,
) -> DemoResult:
    """Runs the demo sections and writes ``out/index.html``, ``metrics.json``, ``config.json``.

    Args:
        out: the output folder (created).
        quick: tiny budgets (a smoke test of seconds) instead of the full ones (minutes).
        seed: seed of data choice and attacks.
        sections: the parts to run (default :data:`DEMO_SECTIONS`).
        callback: makes a progress callback per attack run (the CLI passes rich bars).
        log: receives a line per step.
        threads: torch CPU threads while the demo runs (restored afterwards; None keeps
            the current setting). One thread is the default: these small models at batch
            size 1 gain nothing from more, and on a shared machine extra OpenMP threads
            slowed LeNet steps by one to two orders of magnitude.

    Returns:
        A :class:`DemoResult` with the page path, console rows and metrics.
    """
    root = check_out_dir(out)
    ctx = DemoContext(out=root, quick=quick, seed=seed)
    if callback is not None:
        ctx.callback = callback
    if log is not None:
        ctx.log = log
    todo = list(DEMO_SECTIONS if sections is None else sections)
    t0 = time.perf_counter()
    page: list[Section] = []
    rows: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    used_threads = torch.get_num_threads()
    try:
        torch.manual_seed(seed)
        for part in todo:
            t_part = time.perf_counter()
            res = part.run(ctx)
            page += res.sections
            rows += res.rows
            metrics[part.key] = res.metrics | {"section_time_s": time.perf_counter() - t_part}
    finally:
        torch.set_num_threads(saved_threads)
    wall = time.perf_counter() - t0
    metrics["wall_time_s"] = wall
    write_json(root / "metrics.json", to_jsonable(metrics))
    config = {"quick": quick, "seed": seed, "threads": used_threads,
              "sections": [p.key for p in todo],
              "budgets": {"mlp_iterations": MLP_ITERATIONS, "ig_lenet": IG_LENET,
                          "idlg": IDLG, "use": "quick" if quick
                          else "full"}}
    write_json(root / "config.json", to_jsonable(config))
    page.append(Section("Files", links=[("metrics.json", "metrics.json (every number)"),
                                        ("config.json", "config.json (budgets, seed)")]))
    index = write_page(
        root / "index.html",
        "gradleak demo",
        page,
        subtitle=f"{'quick' if quick else 'full'} run, seed {seed}, "
                 f"{wall:.0f} s on {used_threads} CPU thread(s)",
    )
    return DemoResult(index=index, rows=rows, metrics=metrics, wall_time=wall)
