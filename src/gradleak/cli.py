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

import importlib
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gradleak.cli_common import (
    ProgressBars,
    err_console,
    friendly_errors,
    load_all,
    out_console,
    parse_assignments,
    parse_defense,
    parse_overrides,
    parse_value,
    score_value,
    summary_table,
)
from gradleak.errors import ConfigError
from gradleak.threads import resolve_threads

THREADS_HELP = "torch CPU threads (default: $OMP_NUM_THREADS, else 1; 0: one per core)."

__all__ = ["app", "main", "parse_assignments", "parse_defense", "parse_overrides",
           "parse_value", "registered"]

app = typer.Typer(
    name="gradleak",
    help="Measure what federated-learning updates leak: gradient inversion attacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


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
        typer.Option("--set", help="Override a recipe field key=value (repeatable); "
                     "a dotted key (priors.tv.weight=0.1) changes one entry, priors={} "
                     "replaces the whole mapping."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder of the run report.")] = Path("runs/attack"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    threads: Annotated[int | None, typer.Option(min=0, help=THREADS_HELP)] = None,
) -> None:
    """Simulate one client on bundled images, attack its update and write a report."""
    import gradleak as gl

    load_all()
    overrides = parse_overrides(set_ or [])
    if iterations is not None:
        overrides["iterations"] = iterations
    if restarts is not None:
        overrides["restarts"] = restarts
    spec = gl.RunSpec(
        model=model, model_kwargs=parse_assignments(model_opt or [], "--model-opt"),
        num_classes=num_classes, data=data, data_root=data_root, n=batch_size, size=size,
        attack=attack_name, overrides=overrides, defense=parse_defense(defense),
        local_steps=local_steps, local_lr=local_lr, share_labels=share_labels, seed=seed,
        threads=resolve_threads(threads) or None, out=out,
    )
    bars = ProgressBars(err_console(), enabled=progress)
    with bars.live():
        result = gl.run(spec, callback=bars.callback(f"{attack_name} on {model}"))
    row = {
        "attack": attack_name,
        "PSNR (dB)": score_value(result.scores, "psnr"),
        "SSIM": score_value(result.scores, "ssim"),
        "label acc": score_value(result.scores, "label_acc"),
        "time (s)": result.wall_time,
    }
    out_console().print(summary_table(f"gradleak attack: {model}, batch {batch_size}", [row]))
    out_console().print(f"report: {result.index}", soft_wrap=True)


@app.command()
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder of the demo report.")] = Path("runs/demo"),
    quick: Annotated[bool, typer.Option(help="Tiny budgets (seconds; for tests).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of data and attacks.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    threads: Annotated[int | None, typer.Option(min=0, help=THREADS_HELP)] = None,
) -> None:
    """Reproduce the headline experiment: l2 vs cosine matching on a 4-layer MLP, and more."""
    from gradleak.experiments.demo import run_demo

    load_all()
    err = err_console()
    bars = ProgressBars(err, enabled=progress)
    t0 = time.perf_counter()
    with bars.live():
        result = run_demo(out, quick=quick, seed=seed, callback=bars.callback,
                          log=lambda s: err.print(s, soft_wrap=True),
                          threads=resolve_threads(threads) or None)
    wall = time.perf_counter() - t0
    con = out_console()
    con.print(summary_table(f"gradleak demo ({'quick' if quick else 'full'}, {wall:.0f} s)",
                            result.rows))
    con.print(f"report: {result.index}", soft_wrap=True)


@app.command("list")
@friendly_errors
def list_(
    kind: Annotated[str | None, typer.Argument(help="Show only this kind, e.g. attacks.")] = None,
) -> None:
    """List attacks, models, priors, label strategies, defenses, datasets and experiments."""
    load_all()
    kinds = registered()
    if kind is not None:
        key = kind.lower().replace("-", " ").replace("_", " ")
        match = [k for k in kinds if k.startswith(key)]
        if not match:
            raise ConfigError(f"unknown kind {kind!r}; choose from: {', '.join(kinds)}")
        kinds = {k: kinds[k] for k in match}
    con = out_console()
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

    load_all()
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
    out_console().print(f"experiment {name!r} done in {time.perf_counter() - t0:.1f} s: {page}",
                         soft_wrap=True)


@app.command()
@friendly_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A folder written by `gradleak attack`.")],
) -> None:
    """Redraw a saved run's figures and index.html from its stored files."""
    from gradleak.report import rerender

    page = rerender(run_dir)
    out_console().print(f"report: {page}", soft_wrap=True)


def main() -> None:  # pragma: no cover - console-script convenience
    """Runs the app (same as ``gradleak``)."""
    app()


app.add_typer(importlib.import_module("gradleak.cli_prior").app, name="prior")  # generative priors
app.add_typer(importlib.import_module("gradleak.cli_learn").app, name="learn")  # learned inverters
