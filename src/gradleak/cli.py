"""The ``gradleak`` command line (typer + rich).

Commands:

* ``gradleak attack``: simulate a client on bundled images, run an attack, write a report.
* ``gradleak demo``: the seed's headline experiment and friends, as one HTML report.
* ``gradleak experiment NAME``: a registered study (``gradleak.experiments``).
* ``gradleak report RUN_DIR``: redraw a saved run's figures and ``index.html``.
* ``gradleak list``: everything registered (attacks, models, priors, ...).

Bad input (an unknown name, a bad ``--set``, a missing path) prints one red line and exits
with code 2; gradleak never shows a traceback for a :class:`~gradleak.GradleakError`.

Example:
    $ gradleak attack --model lenet --attack ig --iterations 200 --share-labels --out runs/x
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

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

from gradleak.errors import ConfigError, DataError, GradleakError

app = typer.Typer(
    name="gradleak",
    help="Measure what federated-learning updates leak: gradient inversion attacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def _err_console() -> Console:
    return Console(stderr=True, highlight=False)


def _out_console() -> Console:
    return Console(highlight=False)


def friendly_errors(fn: F) -> F:
    """Turns a :class:`GradleakError` into one red line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GradleakError as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _err_console().print(f"[bold red]error:[/] {msg}", soft_wrap=True, markup=True)
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


def parse_assignments(items: Sequence[str], option: str = "--set") -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` -> ``{"a": 1, "b": {"c": "x"}}``.

    Raises:
        ConfigError: an item is not ``key=value``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"{option} expects key=value, got {item!r}")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{option}: {key!r} conflicts with an earlier value")
            node = child
        node[leaf] = parse_value(raw.strip())
    return out


def parse_defense(spec: str | None) -> dict[str, Any] | None:
    """``"noise:sigma=0.01,..."`` -> ``{"name": "noise", "sigma": 0.01}`` (None stays None)."""
    if spec is None or not spec.strip() or spec.strip().lower() == "none":
        return None
    name, _, rest = spec.partition(":")
    settings = parse_assignments([s for s in rest.split(",") if s.strip()], "--defense")
    return {"name": name.strip(), **settings}


def _deep_merge(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(
            out.get(k), Mapping) else v
    return out


def merge_with_defaults(attack: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merges dotted ``--set`` overrides (``priors.tv=0.1``) into the recipe's default dicts."""
    from gradleak.attacks import ATTACKS

    cls = ATTACKS.get(attack)
    defaults = cls.Config()
    out = dict(overrides)
    for key, value in overrides.items():
        base = getattr(defaults, key, None) if dataclasses.is_dataclass(defaults) else None
        if isinstance(value, Mapping) and isinstance(base, Mapping):
            out[key] = _deep_merge(base, value)
    return out


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
def load_data(data: str, root: Path | None, *, size: int, n: int, seed: int) -> Any:
    """Loads ``n`` images: a registered dataset by name, or an image folder given as a path.

    Raises:
        DataError: ``data`` is neither a dataset name nor an existing folder.
    """
    import gradleak.data as gdata

    if data in gdata.available():
        return gdata.load(data, size=size, n=n, seed=seed, root=root)
    looks_like_path = os.sep in data or data.startswith(".") or Path(data).exists()
    if not looks_like_path:
        raise DataError(
            f"unknown dataset {data!r}; use one of {', '.join(gdata.available())} "
            "or a path to an image folder"
        )
    if not Path(data).is_dir():
        raise DataError(f"data path {data!r} does not exist or is not a folder")
    return gdata.load("imagefolder", size=size, n=n, seed=seed, root=Path(data))


def _load_all() -> None:
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


def _score(scores: Any, key: str) -> Any:
    try:
        v = scores[key]
    except (KeyError, TypeError, IndexError):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


# ---------------------------------------------------------------------------- commands
@app.command()
@friendly_errors
def attack(
    model: Annotated[str, typer.Option(help="Zoo model (see `gradleak list`).")] = "lenet",
    attack_name: Annotated[str, typer.Option("--attack", help="Attack recipe.")] = "ig",
    batch_size: Annotated[int, typer.Option(min=1, help="Images in the client's batch.")] = 1,
    iterations: Annotated[
        int | None, typer.Option(min=1, help="Optimisation iterations (recipe default).")
    ] = None,
    restarts: Annotated[
        int | None, typer.Option(min=1, help="Random restarts (recipe default).")
    ] = None,
    data: Annotated[
        str, typer.Option(help="Dataset name (`gradleak list datasets`) or an image folder.")
    ] = "sample",
    data_root: Annotated[
        Path | None, typer.Option(help="Local folder of a dataset read from disk (CIFAR...).")
    ] = None,
    size: Annotated[int, typer.Option(min=4, help="Image side length in pixels.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of data choice, defense and attack.")] = 0,
    share_labels: Annotated[
        bool, typer.Option("--share-labels/--no-share-labels", help="Tell the server the labels.")
    ] = False,
    local_steps: Annotated[
        int, typer.Option(min=1, help="Client SGD steps (1: FedSGD gradient, >1: FedAvg).")
    ] = 1,
    local_lr: Annotated[float, typer.Option(help="Client learning rate (FedAvg).")] = 0.1,
    defense: Annotated[
        str | None, typer.Option(help="Client defense, e.g. noise:sigma=0.01 or prune:ratio=0.9.")
    ] = None,
    num_classes: Annotated[
        int | None, typer.Option(min=1, help="Model outputs (default: 10, or enough for the data).")
    ] = None,
    model_opt: Annotated[
        list[str] | None,
        typer.Option("--model-opt", help="Model setting key=value, e.g. width=16 (repeatable)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe field key=value (repeatable)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder of the run report.")] = Path("runs/attack"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    threads: Annotated[
        int, typer.Option(min=0, help="torch CPU threads (0: torch's default).")
    ] = 0,
) -> None:
    """Simulate one client on bundled images, attack its update and write a report."""
    import gradleak as gl
    from gradleak.report import write_run

    _load_all()
    overrides = parse_assignments(set_ or [])
    model_kwargs = parse_assignments(model_opt or [], "--model-opt")
    defense_spec = parse_defense(defense)
    gl.models.MODELS.get(model)  # unknown names and bad settings fail before any work
    if defense_spec is not None:
        gl.defenses.create(**defense_spec)
    if iterations is not None:
        overrides["iterations"] = iterations
    if restarts is not None:
        overrides["restarts"] = restarts
    overrides = merge_with_defaults(attack_name, overrides)
    gl.attacks.create(attack_name, **overrides)  # unknown or invalid fields fail early

    images, labels = load_data(data, data_root, size=size, n=batch_size, seed=seed)
    classes = num_classes or max(10, int(labels.max()) + 1)
    try:
        net = gl.models.create(model, num_classes=classes, in_shape=tuple(images.shape[1:]),
                               **model_kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        if isinstance(exc, GradleakError):
            raise
        raise ConfigError(
            f"model {model!r} cannot be built with --model-opt {model_kwargs}: {exc}"
        ) from None
    obs, truth = gl.simulate(net, images, labels, defense=defense_spec,
                             local_steps=local_steps, local_lr=local_lr,
                             share_labels=share_labels, seed=seed)
    if threads:
        import torch

        torch.set_num_threads(threads)
    err = _err_console()
    bars = ProgressBars(err, enabled=progress)
    t0 = time.perf_counter()
    with bars.live():
        rec = gl.reconstruct(obs, attack=attack_name, seed=seed,
                             callback=bars.callback(f"{attack_name} on {model}"), **overrides)
    wall = time.perf_counter() - t0
    scores = gl.evaluate(rec, truth)
    run_config = {
        "model": model, "model_opts": model_kwargs, "num_classes": classes,
        "attack": attack_name, "overrides": overrides, "batch_size": batch_size,
        "data": data, "data_root": str(data_root) if data_root else None, "size": size,
        "seed": seed, "share_labels": share_labels,
        "local_steps": local_steps, "local_lr": local_lr, "defense": defense_spec,
        "threads": threads or None,
    }
    index = write_run(out, rec, truth, scores, config=run_config,
                      title=f"{attack_name} on {model}, batch {batch_size}")
    row = {
        "attack": attack_name,
        "PSNR (dB)": _score(scores, "psnr"),
        "SSIM": _score(scores, "ssim"),
        "label acc": _score(scores, "label_acc"),
        "time (s)": wall,
    }
    _out_console().print(summary_table(f"gradleak attack: {model}, batch {batch_size}", [row]))
    _out_console().print(f"report: {index}", soft_wrap=True)


@app.command()
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder of the demo report.")] = Path("runs/demo"),
    quick: Annotated[bool, typer.Option(help="Tiny budgets (seconds; for tests).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of data and attacks.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    threads: Annotated[
        int, typer.Option(min=0, help="torch CPU threads (0: torch's default).")
    ] = 1,
) -> None:
    """Reproduce the headline experiment: l2 vs cosine matching on a 4-layer MLP, and more."""
    from gradleak.demo import run_demo

    _load_all()
    err = _err_console()
    bars = ProgressBars(err, enabled=progress)
    t0 = time.perf_counter()
    with bars.live():
        result = run_demo(out, quick=quick, seed=seed, callback=bars.callback,
                          log=lambda s: err.print(s, soft_wrap=True),
                          threads=threads or None)
    wall = time.perf_counter() - t0
    con = _out_console()
    con.print(summary_table(f"gradleak demo ({'quick' if quick else 'full'}, {wall:.0f} s)",
                            result.rows))
    con.print(f"report: {result.index}", soft_wrap=True)


@app.command("list")
@friendly_errors
def list_(
    kind: Annotated[str | None, typer.Argument(help="Show only this kind, e.g. attacks.")] = None,
) -> None:
    """List attacks, models, priors, label strategies, defenses, datasets and experiments."""
    _load_all()
    kinds = registered()
    if kind is not None:
        key = kind.lower().replace("-", " ").replace("_", " ")
        match = [k for k in kinds if k.startswith(key)]
        if not match:
            raise ConfigError(f"unknown kind {kind!r}; choose from: {', '.join(kinds)}")
        kinds = {k: kinds[k] for k in match}
    con = _out_console()
    for title, items in kinds.items():
        if not items:
            con.print(f"[bold]{title}[/] (0): none registered")
            continue
        table = Table(title=f"{title} ({len(items)})", title_justify="left", show_header=False)
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("description")
        for name, doc in items:
            table.add_row(name, doc.replace("``", ""))
        con.print(table)


def _doc(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _describe(obj: Any) -> str:
    text = getattr(obj, "description", None)
    return text.strip().splitlines()[0] if isinstance(text, str) and text.strip() else _doc(obj)


def registered() -> dict[str, list[tuple[str, str]]]:
    """``{kind: [(name, one-line description)]}`` of everything registered."""
    out: dict[str, list[tuple[str, str]]] = {}
    sources = {
        "attacks": ("gradleak.attacks", "ATTACKS"),
        "models": ("gradleak.models", "MODELS"),
        "priors": ("gradleak.priors", "PRIORS"),
        "label strategies": ("gradleak.labels", "LABEL_STRATEGIES"),
        "defenses": ("gradleak.defenses", "DEFENSES"),
        "datasets": ("gradleak.data", None),
        "experiments": ("gradleak.experiments", "EXPERIMENTS"),
    }
    for kind, (mod_name, reg_name) in sources.items():
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            out[kind] = []
            continue
        reg = getattr(mod, reg_name, None) if reg_name else None
        if reg is None:
            reg = getattr(mod, "DATASETS", None)
        if reg is not None:
            out[kind] = [(n, _describe(reg.get(n))) for n in reg.available()]
        elif callable(getattr(mod, "available", None)):
            out[kind] = [(n, "") for n in mod.available()]
        else:
            out[kind] = []
    return out


@app.command()
@friendly_errors
def experiment(
    name: Annotated[str, typer.Argument(help="A registered experiment (`gradleak list`).")],
    out: Annotated[Path | None, typer.Option(help="Output folder (runs/NAME).")] = None,
    quick: Annotated[bool, typer.Option(help="Smoke-test size.")] = False,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Experiment setting key=value (repeatable)."),
    ] = None,
) -> None:
    """Run a registered experiment and write its report."""
    from gradleak.experiments import EXPERIMENTS, run_experiment

    _load_all()
    EXPERIMENTS.get(name)  # unknown names fail before any work
    settings = parse_assignments(set_ or [])
    t0 = time.perf_counter()
    try:
        page = run_experiment(name, out or Path("runs") / name, quick=quick, seed=seed,
                              **settings)
    except TypeError as exc:
        if settings and "unexpected keyword" in str(exc):
            raise ConfigError(f"experiment {name!r}: {exc}") from None
        raise
    _out_console().print(f"experiment {name!r} done in {time.perf_counter() - t0:.1f} s: {page}",
                         soft_wrap=True)


@app.command()
@friendly_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A folder written by `gradleak attack`.")],
) -> None:
    """Redraw a saved run's figures and index.html from its stored files."""
    from gradleak.report import rerender

    page = rerender(run_dir)
    _out_console().print(f"report: {page}", soft_wrap=True)


def main() -> None:  # pragma: no cover - console-script convenience
    """Runs the app (same as ``gradleak``)."""
    app()


app.add_typer(importlib.import_module("gradleak.cli_prior").app, name="prior")  # generative priors
app.add_typer(importlib.import_module("gradleak.cli_learn").app, name="learn")  # learned inverters
