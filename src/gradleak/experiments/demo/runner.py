"""Runs the demo's sections and writes its page; registered as the experiment ``demo``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gradleak.errors import ConfigError
from gradleak.experiments.base import register_experiment
from gradleak.experiments.demo.base import (
    DEMO_SECTIONS,
    CallbackFactory,
    DemoContext,
    DemoSection,
    ordered_sections,
)
from gradleak.persistence.files import write_json
from gradleak.report.html import Section, write_page
from gradleak.run import torch_threads
from gradleak.safeio import check_out_dir


@dataclass
class DemoResult:
    """The demo's outcome: the page, the console rows, all metrics and the wall time."""

    index: Path
    rows: list[dict[str, Any]]
    metrics: dict[str, Any]
    wall_time: float


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
        sections: the parts to run (default: every registered section, in page order).
        callback: makes a progress callback per attack run (the CLI passes rich bars).
        log: receives a line per step.
        threads: torch CPU threads while the demo runs (restored afterwards; None keeps
            the current setting). One thread is the default: these small models at batch
            size 1 gain nothing from more, and on a shared machine extra OpenMP threads
            slowed LeNet steps by one to two orders of magnitude.

    Returns:
        A :class:`DemoResult` with the page path, console rows and metrics.

    Example:
        >>> result = run_demo("runs/demo", quick=True)  # doctest: +SKIP
        >>> result.index
        PosixPath('runs/demo/index.html')
    """
    root = check_out_dir(out)  # a file, a symlink or an unwritable folder fails before any work
    ctx = DemoContext(out=root, quick=quick, seed=seed)
    if callback is not None:
        ctx.callback = callback
    if log is not None:
        ctx.log = log
    todo = list(ordered_sections() if sections is None else sections)
    t0 = time.perf_counter()
    page: list[Section] = []
    rows: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    with torch_threads(threads) as used_threads:
        torch.manual_seed(seed)
        for part in todo:
            t_part = time.perf_counter()
            res = part.run(ctx)
            page += res.sections
            rows += res.rows
            metrics[part.key] = res.metrics | {"section_time_s": time.perf_counter() - t_part}
    wall = time.perf_counter() - t0
    metrics["wall_time_s"] = wall
    write_json(root / "metrics.json", metrics)
    budgets: dict[str, Any] = {}
    for part in todo:
        budgets.update(part.budgets)
    config = {"quick": quick, "seed": seed, "threads": used_threads,
              "sections": [p.key for p in todo],
              "budgets": budgets | {"use": "quick" if quick else "full"}}
    write_json(root / "config.json", config)
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


@register_experiment("demo")
def demo_experiment(out: Path, *, quick: bool = False, seed: int = 0,
                    **settings: Any) -> Path:
    """The demo as a registered experiment (``gradleak experiment demo``).

    Settings: ``threads`` (torch CPU threads, default 1) and ``sections`` (a subset of the
    section keys, e.g. ``[mlp_l2_vs_cosine]``).
    """
    unknown = sorted(set(settings) - {"threads", "sections"})
    if unknown:
        raise ConfigError(f"experiment 'demo' has no setting {', '.join(map(repr, unknown))}; "
                          "valid settings: sections, threads")
    keys = settings.get("sections")
    chosen = None if keys is None else [DEMO_SECTIONS.get(str(k)) for k in keys]
    return run_demo(out, quick=quick, seed=seed, sections=chosen,
                    threads=settings.get("threads", 1)).index
