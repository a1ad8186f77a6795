"""What the CLI's commands share: error printing, option parsing, progress bars, tables.

Nothing here runs an attack: the commands in :mod:`gradleak.cli` parse options into a
:class:`gradleak.RunSpec` (or an experiment's settings) and print what comes back.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from gradleak.errors import ConfigError, GradleakError

F = TypeVar("F", bound=Callable[..., Any])


def err_console() -> Console:
    return Console(stderr=True, highlight=False)


def out_console() -> Console:
    return Console(highlight=False)


def friendly_errors(fn: F) -> F:
    """Turns a :class:`GradleakError` into one red line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GradleakError as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            err_console().print(f"[bold red]error:[/] {msg}", soft_wrap=True, markup=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------- parsing
def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML (numbers, booleans, lists, ``{a: 1}``), ``1e-3`` as a float."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads "1e-3" as a string
        except ValueError:
            return value
    return value


def parse_overrides(items: Sequence[str], option: str = "--set") -> dict[str, Any]:
    """``["lr=0.1", "priors.tv.weight=0.05"]`` -> ``{"lr": 0.1, "priors.tv.weight": 0.05}``.

    Dotted keys stay dotted: by the rule of :mod:`gradleak.config` each changes one entry of
    a mapping field, the same as ``gradleak.reconstruct(obs, **{"priors.tv.weight": 0.05})``;
    ``priors={}`` replaces the whole mapping.

    Raises:
        ConfigError: an item is not ``key=value``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"{option} expects key=value, got {item!r}")
        out[key] = parse_value(raw.strip())
    return out


def parse_assignments(items: Sequence[str], option: str = "--set") -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` -> ``{"a": 1, "b": {"c": "x"}}`` (model, defense and experiment
    settings, which are plain keyword arguments rather than config fields).

    Raises:
        ConfigError: an item is not ``key=value``, or a key conflicts with an earlier one.
    """
    out: dict[str, Any] = {}
    for key, value in parse_overrides(items, option).items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{option}: {key!r} conflicts with an earlier value")
            node = child
        node[leaf] = value
    return out


def parse_defense(spec: str | None) -> dict[str, Any] | None:
    """``"noise:sigma=0.01,..."`` -> ``{"name": "noise", "sigma": 0.01}`` (None stays None)."""
    if spec is None or not spec.strip() or spec.strip().lower() == "none":
        return None
    name, _, rest = spec.partition(":")
    settings = parse_assignments([s for s in rest.split(",") if s.strip()], "--defense")
    return {"name": name.strip(), **settings}


# ---------------------------------------------------------------------------- progress
class ProgressBars:
    """Rich progress bars fed by attacks' :class:`~gradleak.attacks.Progress` callbacks."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self._progress: Progress | None = None

    @contextmanager
    def live(self) -> Iterator[ProgressBars]:
        """Shows the bars while the block runs."""
        if not self.enabled:
            yield self
            return
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        ) as prog:
            self._progress = prog
            try:
                yield self
            finally:
                self._progress = None

    def callback(self, description: str) -> Callable[[Any], None] | None:
        """A callback for ``gradleak.reconstruct(..., callback=...)`` with its own bar."""
        prog = self._progress
        if prog is None:
            return None
        task: list[Any] = []  # the bar appears on the first report (closed-form: never)

        def update(p: Any) -> None:
            total = max(int(getattr(p, "total", 0) or 0), 1)
            done = min(int(getattr(p, "iteration", 0)), total)  # engines count from 1
            loss = getattr(p, "loss", float("nan"))
            if not task:
                task.append(prog.add_task(description, total=total, loss="-"))
            prog.update(task[0], total=total, completed=done, loss=f"{float(loss):.4g}")

        return update


# ---------------------------------------------------------------------------- helpers
def load_all() -> None:
    """Imports the packages whose modules register attacks, priors, strategies, ..."""
    for mod in ("gradleak.attacks", "gradleak.priors", "gradleak.labels", "gradleak.defenses",
                "gradleak.models", "gradleak.experiments", "gradleak.data"):
        try:
            importlib.import_module(mod)
        except ImportError:  # a subpackage still being written must not break the CLI
            continue


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def summary_table(title: str, rows: Sequence[Mapping[str, Any]]) -> Table:
    """A rich table of result rows (columns taken from the rows' keys, in order)."""
    table = Table(title=title, title_justify="left")
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    for c in cols:
        table.add_column(c, justify="left" if c in ("run", "attack", "part", "labels") else
                         "right")
    for r in rows:
        table.add_row(*(_fmt(r.get(c)) for c in cols))
    return table


def score_value(scores: Any, key: str) -> Any:
    try:
        v = scores[key]
    except (KeyError, TypeError, IndexError):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


