"""What every demo section shares: its context, its result, the section registry, and one
attack run (through :func:`gradleak.run.attack_observation`, the library's one run glue).

A section is a function ``run(ctx: DemoContext) -> SectionResult`` registered with
:func:`demo_section`; it writes its files under ``ctx.out / key``. Adding a section is one new
module in :mod:`gradleak.experiments.demo.sections` (modules there are imported
automatically); ``order`` places it on the page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradleak.attacks.base import Callback
from gradleak.registry import Registry
from gradleak.run import RunResult, attack_observation
from gradleak.types import GroundTruth, Observation

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

    sections: list[Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DemoSection:
    """A registered demo part: ``run(ctx)`` writes under ``ctx.out / key``.

    Attributes:
        key: the section's folder and its key in ``metrics.json``.
        title: a one-line description.
        order: position on the page (sections run in increasing order).
        run: the section's function.
        budgets: its ``{name: (full, quick)}`` budgets, recorded in ``config.json``.
    """

    key: str
    title: str
    order: int
    run: Callable[[DemoContext], SectionResult]
    budgets: Mapping[str, Any] = field(default_factory=dict)


DEMO_SECTIONS: Registry[DemoSection] = Registry("demo section")


def demo_section(
    key: str, title: str, *, order: int, budgets: Mapping[str, Any] | None = None
) -> Callable[[Callable[[DemoContext], SectionResult]], Callable[[DemoContext], SectionResult]]:
    """Registers a section function under ``key`` (duplicate keys are refused)."""

    def deco(fn: Callable[[DemoContext], SectionResult]) -> Callable[[DemoContext], SectionResult]:
        DEMO_SECTIONS.register(key)(DemoSection(key, title, order, fn, dict(budgets or {})))
        return fn

    return deco


def ordered_sections() -> list[DemoSection]:
    """The registered sections in page order."""
    return sorted((DEMO_SECTIONS.get(k) for k in DEMO_SECTIONS.available()),
                  key=lambda s: (s.order, s.key))


@dataclass
class AttackRun:
    """One attack run inside a section: the run's result and its report folder."""

    result: RunResult
    folder: str | None

    @property
    def rec(self) -> Any:
        return self.result.reconstruction

    @property
    def truth(self) -> GroundTruth:
        return self.result.truth

    @property
    def psnr(self) -> float:
        return self.result.psnr

    @property
    def ssim(self) -> float:
        return self.result.ssim

    @property
    def wall_time(self) -> float:
        return self.result.wall_time


def run_attack(
    ctx: DemoContext,
    obs: Observation,
    truth: GroundTruth,
    *,
    attack: str,
    folder: str | None,
    title: str,
    run_config: dict[str, Any] | None = None,
    **overrides: Any,
) -> AttackRun:
    """Runs ``attack`` on ``obs``, scores it and writes its report to ``ctx.out / folder``
    (no files when ``folder`` is None)."""
    ctx.log(f"demo: {title}")
    result = attack_observation(
        obs, truth, attack=attack, overrides=overrides, seed=ctx.seed,
        callback=ctx.callback(title), out=None if folder is None else ctx.out / folder,
        title=title,
        config={**(run_config or {}), "attack": attack, "overrides": overrides,
                "seed": ctx.seed, "quick": ctx.quick})
    return AttackRun(result, folder)


def row(part: str, run: AttackRun, label: str = "") -> dict[str, Any]:
    """A console summary row of one attack run."""
    return {"part": part, "PSNR (dB)": run.psnr, "SSIM": run.ssim, "label": label,
            "time (s)": run.wall_time}


def run_metrics(run: AttackRun) -> dict[str, Any]:
    """The numbers of one attack run stored in ``metrics.json``."""
    out = {"psnr": run.psnr, "ssim": run.ssim, "wall_time_s": run.wall_time,
           "iterations": run.rec.config.get("iterations")}
    if run.folder is not None:
        out["report"] = f"{run.folder}/index.html"
    return out


def class_label(label: int, dataset: str = "sample") -> str:
    """``3`` -> ``"3 (cat)"``: a label with its class name in ``dataset``."""
    import gradleak.data as gdata

    names = gdata.info(dataset).class_names
    return f"{label} ({names[label]})" if 0 <= label < len(names) else str(label)
