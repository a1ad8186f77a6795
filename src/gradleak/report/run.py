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

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gradleak.errors import DataError
from gradleak.report.gifs import save_progress_gif
from gradleak.report.grids import save_grid
from gradleak.report.html import Section, write_page
from gradleak.report.plots import save_loss_plot
from gradleak.types import GroundTruth, Reconstruction, Trace

GRID = "grid.png"
PROGRESS = "progress.gif"
LOSS = "loss.png"
METRICS = "metrics.json"
CONFIG = "config.json"
TENSORS = "reconstruction.safetensors"
TRACE = "trace.json"
INDEX = "index.html"
RUN_FORMAT = "gradleak.run/1"
SUMMARY_KEYS = ("psnr", "ssim", "lpips", "label_acc", "label_count_error")


def to_jsonable(obj: Any) -> Any:
    """Converts tensors, numpy values, tuples and non-finite floats to strict JSON values."""
    if isinstance(obj, Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray | np.generic):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [to_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    return str(obj)


def scores_dict(scores: Any) -> dict[str, Any]:
    """A plain dict of an ``evaluate`` result (``to_dict()``, a mapping, or None)."""
    if scores is None:
        return {}
    if hasattr(scores, "to_dict"):
        return dict(scores.to_dict())
    if isinstance(scores, Mapping):
        return dict(scores)
    raise TypeError(f"scores must be a mapping or have to_dict(), not {type(scores).__name__}")


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(to_jsonable(data), indent=2) + "\n", encoding="utf-8")
    return path


@dataclass
class RunData:
    """Everything a report is drawn from (what :func:`load_run` reads back)."""

    rec: Reconstruction
    truth: GroundTruth | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    title: str = "gradleak run"


def _metrics(rec: Reconstruction, truth: GroundTruth | None, scores: Any) -> dict[str, Any]:
    out = scores_dict(scores)
    out.setdefault("attack", rec.attack)
    out.setdefault("wall_time_s", rec.trace.wall_time)
    out.setdefault("recovered_labels", rec.labels)
    if truth is not None:
        out.setdefault("true_labels", truth.labels)
    if rec.trace.restart_scores:
        out.setdefault("restart_scores", rec.trace.restart_scores)
        out.setdefault("best_restart", rec.trace.best_restart)
    if rec.extras:
        out.setdefault("extras", rec.extras)
    return out


def _save_tensors(out: Path, rec: Reconstruction, truth: GroundTruth | None) -> None:
    from safetensors.torch import save_file

    t: dict[str, Tensor] = {"images": rec.images}
    if rec.labels is not None:
        t["labels"] = rec.labels
    if truth is not None:
        t["truth_images"], t["truth_labels"] = truth.images, truth.labels
    snaps = rec.trace.snapshots
    if snaps and all(s.shape == snaps[0].shape for s in snaps):
        t["snapshots"] = torch.stack(list(snaps))
    save_file({k: v.detach().cpu().contiguous() for k, v in t.items()}, str(out / TENSORS))
    tr = rec.trace
    _write_json(
        out / TRACE,
        {
            "format": RUN_FORMAT,
            "attack": rec.attack,
            "losses": tr.losses,
            "snapshot_iterations": tr.snapshot_iterations,
            "restart_scores": tr.restart_scores,
            "best_restart": tr.best_restart,
            "wall_time": tr.wall_time,
            "expected": rec.expected,
        },
    )


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
            summary[key] = run_cfg[key]
    summary.update({k: m[k] for k in SUMMARY_KEYS if k in m})
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
        rows = [{k: r[k] for k in keep if k in r and r[k] is not None} for r in per_image]
        secs.append(Section("Per image", text="one row per reconstructed image; index is the "
                            "true image it is matched to", table=rows))
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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if scores is None and truth is not None:
        from gradleak.metrics import evaluate

        scores = evaluate(rec, truth)
    data = RunData(
        rec=rec,
        truth=truth,
        metrics=to_jsonable(_metrics(rec, truth, scores)),
        config=to_jsonable(
            {"title": title, "attack": rec.attack, "attack_config": rec.config,
             "run": dict(config or {})}
        ),
        title=title,
    )
    _write_json(out / METRICS, data.metrics)
    _write_json(out / CONFIG, data.config)
    _save_tensors(out, rec, truth)
    files = render_figures(out, data)
    files.update({"tensors": TENSORS, "trace": TRACE})
    return write_index(out, data, files)


def _expected(value: Any, src: Path) -> int | None:
    """The saved ``Reconstruction.expected`` (validated: None or a non-negative int)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise DataError(f"{src / TRACE}: 'expected' must be a non-negative integer or null")


def load_run(run_dir: str | Path) -> RunData:
    """Reads a folder written by :func:`write_run` back into a :class:`RunData`.

    Raises:
        DataError: the folder is not a gradleak run (no ``trace.json`` / tensors) or is
            corrupt.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    src = Path(run_dir)
    need = [src / TRACE, src / TENSORS]
    if not all(p.is_file() for p in need):
        raise DataError(
            f"{src} is not a gradleak run folder (needs {TRACE} and {TENSORS}); "
            "write one with `gradleak attack --out DIR` or gradleak.report.write_run"
        )
    try:
        tr = json.loads((src / TRACE).read_text(encoding="utf-8"))
        t = load_file(str(src / TENSORS))
        metrics = json.loads((src / METRICS).read_text()) if (src / METRICS).is_file() else {}
        config = json.loads((src / CONFIG).read_text()) if (src / CONFIG).is_file() else {}
    except (json.JSONDecodeError, SafetensorError, OSError) as exc:
        raise DataError(f"{src} is corrupt ({exc}); write the run again") from exc
    if tr.get("format") != RUN_FORMAT or "images" not in t:
        raise DataError(f"{src / TRACE} is not a {RUN_FORMAT} trace")
    snaps = list(t["snapshots"].unbind(0)) if "snapshots" in t else []
    trace = Trace(
        losses=[[float(v) for v in row] for row in tr.get("losses", [])],
        snapshot_iterations=list(tr.get("snapshot_iterations", [])),
        snapshots=snaps,
        restart_scores=[float(v) for v in tr.get("restart_scores", [])],
        best_restart=int(tr.get("best_restart", 0)),
        wall_time=float(tr.get("wall_time", 0.0)),
    )
    rec = Reconstruction(
        images=t["images"],
        labels=t.get("labels"),
        attack=str(tr.get("attack", config.get("attack", "unknown"))),
        config=dict(config.get("attack_config", {})),
        trace=trace,
        expected=_expected(tr.get("expected"), src),
    )
    truth = None
    if "truth_images" in t:
        truth = GroundTruth(images=t["truth_images"], labels=t["truth_labels"])
    return RunData(rec=rec, truth=truth, metrics=metrics, config=config,
                   title=str(config.get("title", "gradleak run")))


def rerender(run_dir: str | Path) -> Path:
    """Redraws a saved run's figures and ``index.html`` from its stored files.

    Metrics and config are taken from the saved JSON (not recomputed).

    Returns:
        The path of ``index.html``.
    """
    src = Path(run_dir)
    data = load_run(src)
    files = render_figures(src, data)
    files.update({"tensors": TENSORS, "trace": TRACE})
    return write_index(src, data, files)
