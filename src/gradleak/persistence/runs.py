"""A run folder's raw files, and reading them back.

A run folder (written by :func:`gradleak.report.write_run`, read by ``gradleak report``)
holds, besides its figures and ``index.html``:

* ``metrics.json``: the scores (``gradleak.evaluate``), labels, wall time, restart scores;
* ``config.json``: the title, the attack's full config and the run settings;
* ``reconstruction.safetensors``: the images, labels, the true batch (when known) and the
  progress snapshots;
* ``trace.json``: the loss curves and the rest of the :class:`~gradleak.types.Trace`.

No pickle is used: tensors are safetensors, everything else strict JSON. Reading a folder
back validates every file (it may come from someone else).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gradleak import safeio
from gradleak.errors import DataError
from gradleak.persistence.files import write_artifact, write_json
from gradleak.persistence.jsonio import to_jsonable
from gradleak.persistence.run_checks import check_object, check_run_tensors, check_trace
from gradleak.schema import DEFAULT_LIMITS
from gradleak.types import GroundTruth, Reconstruction, Trace

METRICS = "metrics.json"
CONFIG = "config.json"
TENSORS = "reconstruction.safetensors"
TRACE = "trace.json"
RUN_FORMAT = "gradleak.run/1"


@dataclass
class RunData:
    """Everything a run report is drawn from (what :func:`load_run` reads back)."""

    rec: Reconstruction
    truth: GroundTruth | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    title: str = "gradleak run"


def scores_dict(scores: Any) -> dict[str, Any]:
    """A plain dict of an ``evaluate`` result (``to_dict()``, a mapping, or None)."""
    if scores is None:
        return {}
    if hasattr(scores, "to_dict"):
        return dict(scores.to_dict())
    if isinstance(scores, Mapping):
        return dict(scores)
    raise TypeError(f"scores must be a mapping or have to_dict(), not {type(scores).__name__}")


def run_metrics(rec: Reconstruction, truth: GroundTruth | None, scores: Any) -> dict[str, Any]:
    """The content of ``metrics.json``: the scores plus the run's labels, time and restarts."""
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


def make_run_data(
    rec: Reconstruction,
    truth: GroundTruth | None,
    scores: Any,
    *,
    title: str,
    config: Mapping[str, Any] | None,
) -> RunData:
    """Assembles the :class:`RunData` of a finished run (JSON-ready metrics and config)."""
    return RunData(
        rec=rec,
        truth=truth,
        metrics=to_jsonable(run_metrics(rec, truth, scores)),
        config=to_jsonable({"title": title, "attack": rec.attack, "attack_config": rec.config,
                            "run": dict(config or {})}),
        title=title,
    )


def save_run_data(out: str | Path, data: RunData) -> dict[str, str]:
    """Writes a run's metrics, config, tensors and trace into ``out``; returns {kind: file}."""
    from safetensors.torch import save

    folder = Path(out)
    write_json(folder / METRICS, data.metrics)
    write_json(folder / CONFIG, data.config)
    rec, truth = data.rec, data.truth
    t: dict[str, Tensor] = {"images": rec.images}
    if rec.labels is not None:
        t["labels"] = rec.labels
    if truth is not None:
        t["truth_images"], t["truth_labels"] = truth.images, truth.labels
    snaps = rec.trace.snapshots
    if snaps and all(s.shape == snaps[0].shape for s in snaps):
        t["snapshots"] = torch.stack(list(snaps))
    write_artifact(folder / TENSORS,
                   save({k: v.detach().cpu().contiguous() for k, v in t.items()}))
    tr = rec.trace
    write_json(folder / TRACE, {
        "format": RUN_FORMAT,
        "attack": rec.attack,
        "losses": tr.losses,
        "snapshot_iterations": tr.snapshot_iterations,
        "restart_scores": tr.restart_scores,
        "best_restart": tr.best_restart,
        "wall_time": tr.wall_time,
        "expected": rec.expected,
    })
    return {"tensors": TENSORS, "trace": TRACE}


def load_run(run_dir: str | Path) -> RunData:
    """Reads a folder written by :func:`gradleak.report.write_run` back into a :class:`RunData`.

    The folder may come from someone else, so every file is read without following symbolic
    links, with a size ceiling, and validated (:mod:`gradleak.persistence.run_checks`).

    Raises:
        DataError: the folder is not a gradleak run (no ``trace.json`` / tensors), is
            corrupt or was tampered with.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    src = Path(run_dir)
    need = [src / TRACE, src / TENSORS]
    if not all(p.is_file() or p.is_symlink() for p in need):
        raise DataError(
            f"{src} is not a gradleak run folder (needs {TRACE} and {TENSORS}); "
            "write one with `gradleak attack --out DIR` or gradleak.report.write_run"
        )
    raw = safeio.read_json(src / TRACE)
    if not isinstance(raw, dict) or raw.get("format") != RUN_FORMAT:
        raise DataError(f"{src / TRACE} is not a {RUN_FORMAT} trace")
    tr = check_trace(raw, src / TRACE)
    try:
        t = load(safeio.read_bytes(src / TENSORS, max_bytes=DEFAULT_LIMITS.max_file_bytes))
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError) as exc:
        raise DataError(f"{src / TENSORS} is corrupt ({exc}); write the run again") from exc
    check_run_tensors(t, src / TENSORS)
    optional = {name: check_object(safeio.read_json(src / name), src / name)
                if (src / name).exists() or (src / name).is_symlink() else {}
                for name in (METRICS, CONFIG)}
    metrics, config = optional[METRICS], optional[CONFIG]
    attack_cfg = config.get("attack_config", {})
    if not isinstance(attack_cfg, Mapping):
        raise DataError(f"{src / CONFIG}: field 'attack_config' must be a JSON object")
    snaps = list(t["snapshots"].unbind(0)) if "snapshots" in t else []
    trace = Trace(
        losses=tr.get("losses", []),
        snapshot_iterations=tr.get("snapshot_iterations", []),
        snapshots=snaps,
        restart_scores=tr.get("restart_scores", []),
        best_restart=tr.get("best_restart", 0),
        wall_time=tr.get("wall_time", 0.0),
    )
    rec = Reconstruction(
        images=t["images"],
        labels=t.get("labels"),
        attack=str(tr.get("attack", config.get("attack", "unknown")))[:100],
        config=dict(attack_cfg),
        trace=trace,
        expected=tr.get("expected"),
    )
    truth = None
    if "truth_images" in t:
        truth = GroundTruth(images=t["truth_images"], labels=t["truth_labels"])
    return RunData(rec=rec, truth=truth, metrics=metrics, config=config,
                   title=str(config.get("title", "gradleak run"))[:1000])
