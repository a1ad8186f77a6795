"""One run's report folder: figures, JSON, the raw tensors and an ``index.html``.

:func:`write_run` writes, under ``out_dir``:

* ``grid.png``: true images above their matched reconstructions (PSNR and label captions);
* ``progress.gif``: the reconstruction's progress, one frame per ``trace.snapshots`` entry;
* ``loss.png``: the loss per iteration, one line per restart;
* ``metrics.json``: the scores (``gradleak.evaluate``), labels, wall time, restart scores;
* ``config.json``: the attack's full config and the run settings it was given;
* ``reconstruction.safetensors`` + ``trace.json``: the raw images and trace, so that
  :func:`rerender` (``gradleak report RUN_DIR``) can rebuild everything later;
* ``index.html``: a self-contained page showing all of the above (relative links only).

Non-finite floats (e.g. PSNR ``inf`` of an exact analytic recovery) are stored in JSON as
the strings ``"inf"``, ``"-inf"`` and ``"nan"`` so that the files stay strict JSON.

Example:
    >>> import gradleak as gl
    >>> rec = gl.reconstruct(obs, attack="ig", iterations=100)        # doctest: +SKIP
    >>> gl.report.write_run("runs/x", rec, truth, gl.evaluate(rec, truth))  # doctest: +SKIP
    PosixPath('runs/x/index.html')
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gradleak import safeio
from gradleak.persistence.jsonio import to_jsonable
from gradleak.persistence.runs import (
    CONFIG,
    METRICS,
    TENSORS,
    TRACE,
    RunData,
    load_run,
    make_run_data,
    save_run_data,
    scores_dict,
)
from gradleak.report.gifs import save_progress_gif
from gradleak.report.grids import save_grid
from gradleak.report.html import Section, write_page
from gradleak.report.plots import save_loss_plot
from gradleak.types import GroundTruth, Reconstruction

GRID = "grid.png"
PROGRESS = "progress.gif"
LOSS = "loss.png"
INDEX = "index.html"
SUMMARY_KEYS = ("psnr", "ssim", "lpips", "label_acc", "label_count_error")
#: How metric and setting names read in a page's tables.
DISPLAY_NAMES = {
    "psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS", "mse": "MSE",
    "label_acc": "label accuracy", "label_count_error": "label-count error",
    "label_count_acc": "label-count accuracy", "label_existence_acc": "label existence accuracy",
    "batch_size": "batch size", "wall_time_s": "wall time (s)", "index": "true image",
    "label": "recovered label", "true_label": "true label", "label_correct": "label correct",
}


def display_name(key: str) -> str:
    """``"label_acc"`` -> ``"label accuracy"``; unknown keys get spaces for underscores."""
    return DISPLAY_NAMES.get(key, key.replace("_", " "))


__all__ = ["CONFIG", "METRICS", "RunData", "load_run", "rerender", "render_figures",
           "run_sections", "scores_dict", "to_jsonable", "write_index", "write_run"]


def render_figures(out: Path, data: RunData) -> dict[str, str]:
    """Draws the grid, GIF and loss plot of ``data`` into ``out``; returns {kind: file}."""
    rec, truth = data.rec, data.truth
    files: dict[str, str] = {}
    save_grid(
        out / GRID,
        rec.images,
        truth.images if truth is not None else None,
        labels=rec.labels,
        truth_labels=truth.labels if truth is not None else None,
    )
    files["grid"] = GRID
    if rec.trace.snapshots:
        t_img = truth.images if truth is not None else None
        save_progress_gif(out / PROGRESS, rec, t_img, title=rec.attack)
        files["progress"] = PROGRESS
    if save_loss_plot(out / LOSS, rec.trace, title=f"{rec.attack}: gradient-matching loss"):
        files["loss"] = LOSS
    return files


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_sections(data: RunData, files: Mapping[str, str]) -> list[Section]:
    """The sections of a run's ``index.html``."""
    m = data.metrics
    summary: dict[str, Any] = {"attack": data.rec.attack}
    run_cfg = data.config.get("run", {}) if isinstance(data.config.get("run"), Mapping) else {}
    for key in ("model", "data", "batch_size", "defense", "seed"):
        if key in run_cfg:
            summary[display_name(key)] = run_cfg[key]
    summary.update({display_name(k): m[k] for k in SUMMARY_KEYS if k in m})
    summary["wall time (s)"] = m.get("wall_time_s", data.rec.trace.wall_time)
    if m.get("recovered_labels") is not None:
        summary["recovered labels"] = m["recovered_labels"]
    if m.get("true_labels") is not None:
        summary["true labels"] = m["true_labels"]
    secs = [Section("Summary", table=summary)]
    if "grid" in files:
        cap = ("true images (top) above their matched reconstructions (bottom), "
               "captioned with PSNR and recovered label") if data.truth is not None else (
               "reconstructed images")
        secs.append(Section("Reconstruction", images=[(files["grid"], cap)]))
    if "progress" in files:
        secs.append(Section("Progress", images=[(files["progress"],
                     "the chosen restart's images at the logged iterations")]))
    if "loss" in files:
        secs.append(Section("Loss", images=[(files["loss"], "objective per iteration")]))
    per_image = m.get("per_image")
    if isinstance(per_image, list) and per_image and all(isinstance(r, Mapping)
                                                         for r in per_image):
        keep = ("index", "psnr", "ssim", "lpips", "label", "true_label", "label_correct")
        rows = [{display_name(k): r[k] for k in keep if k in r and r[k] is not None}
                for r in per_image]
        secs.append(Section("Per image", text="one row per reconstructed image; 'true image' "
                            "is the index of the true image it is matched to", table=rows))
    scalars = {k: v for k, v in _flat(m).items()
               if isinstance(v, int | float | str | bool) and k not in ("attack",)}
    if scalars:
        secs.append(Section("All metrics", table=scalars))
    attack_cfg = data.config.get("attack_config")
    if isinstance(attack_cfg, Mapping) and attack_cfg:
        secs.append(Section("Attack config", table=_flat(attack_cfg)))
    links = [(f, f) for f in (METRICS, CONFIG, files.get("trace"), files.get("tensors")) if f]
    secs.append(Section("Files", links=links))
    return secs


def write_index(out: Path, data: RunData, files: Mapping[str, str]) -> Path:
    """Writes ``index.html`` for a run folder."""
    sub = f"attack: {data.rec.attack}"
    return write_page(out / INDEX, data.title, run_sections(data, files), subtitle=sub)


def write_run(
    out_dir: str | Path,
    rec: Reconstruction,
    truth: GroundTruth | None = None,
    scores: Any = None,
    *,
    title: str = "gradleak run",
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Writes a run's report folder (see the module docstring) and returns ``index.html``.

    Args:
        out_dir: the folder to write (created; existing report files are replaced).
        rec: the attack's output.
        truth: the client's private batch, for the truth-vs-reconstruction grid; or None.
        scores: the result of ``gradleak.evaluate(rec, truth)`` (a mapping or an object
            with ``to_dict()``). When None and ``truth`` is given, it is computed.
        title: the page title.
        config: the run settings (model, data, defense, seed, CLI overrides...) stored in
            ``config.json`` next to the attack's own config.

    Returns:
        The path of ``index.html``.
    """
    out = safeio.ensure_dir(out_dir)
    for name in (METRICS, CONFIG, TENSORS, TRACE, GRID, PROGRESS, LOSS, INDEX):
        safeio.check_target(out / name)  # refuse planted links before any work
    if scores is None and truth is not None:
        from gradleak.metrics import evaluate

        scores = evaluate(rec, truth)
    data = make_run_data(rec, truth, scores, title=title, config=config)
    saved = save_run_data(out, data)
    files = render_figures(out, data) | saved
    return write_index(out, data, files)


def rerender(run_dir: str | Path) -> Path:
    """Redraws a saved run's figures and ``index.html`` from its stored files.

    Metrics and config are taken from the saved JSON (not recomputed).

    Returns:
        The path of ``index.html``.
    """
    src = safeio.ensure_dir(run_dir, create=False)
    for name in (GRID, PROGRESS, LOSS, INDEX):  # refuse planted links before any work
        safeio.check_target(src / name)
    data = load_run(src)
    files = render_figures(src, data)
    files.update({"tensors": TENSORS, "trace": TRACE})
    return write_index(src, data, files)
