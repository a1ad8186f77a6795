"""``gradleak learn``: train learned inverters (Learning to Invert, Wu et al., UAI 2023).

Example:
    $ gradleak learn train --model lenet --aux digits --batch-size 1 \\
        --defense prune:ratio=0.99 --out inverter.safetensors
    $ gradleak learn info inverter.safetensors

The command parses, calls :func:`gradleak.learned.train` and prints; the training writes a
checkpoint after every epoch, and ``--resume`` continues from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Train and inspect learned inverters (attack 'lti').",
                  no_args_is_help=True)

from gradleak.cli_common import (  # noqa: E402
    err_console,
    friendly_errors,
    out_console,
    parse_assignments,
    parse_defense,
    summary_table,
)


def _validation(aux: str, size: int, channels: int | None, seed: int
                ) -> tuple[Any, Any] | None:
    """The dataset's ``holdout`` split if it has one, else None (a share of ``train``)."""
    import gradleak.data as gdata

    splits = gdata.DATASETS.get(aux).splits
    if splits is None or "holdout" not in splits:
        return None
    return gdata.load(aux, size=size, n=None, split="holdout", seed=seed, channels=channels)


@app.command("train")
@friendly_errors
def train_cmd(
    model: Annotated[str, typer.Option(help="Zoo model the server sends.")] = "lenet",
    aux: Annotated[str, typer.Option(help="Auxiliary dataset (gradleak list datasets).")
                   ] = "digits",
    batch_size: Annotated[int, typer.Option(min=1, help="Client batch size B.")] = 1,
    defense: Annotated[str | None, typer.Option(
        help="Client defense to train for, e.g. prune:ratio=0.99 or noise:sigma=0.01.")] = None,
    head: Annotated[str, typer.Option(
        help="'mlp' (the paper's), 'rows' (last layers) or 'units' (one decoder per label's "
             "row; batch-aware, needs labels: shared or recovered).")] = "mlp",
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the auxiliary images.")] = 8,
    hidden: Annotated[int, typer.Option(
        min=1, help="Hidden width of the MLP (the paper: 3000 for B=1).")] = 1000,
    hash_dim: Annotated[int, typer.Option(
        min=0, help="Feature-hash buckets (0: the whole gradient).")] = 16384,
    size: Annotated[int, typer.Option(min=4, help="Image side length.")] = 32,
    channels: Annotated[int | None, typer.Option(help="Force 1 or 3 channels.")] = None,
    model_seed: Annotated[int, typer.Option(help="Seed of the model's weights.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the inverter's training.")] = 0,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Training setting key=value, e.g. lr=3e-4 (repeatable).")] = None,
    out: Annotated[Path, typer.Option(help="Checkpoint (.safetensors), written every epoch.")
                   ] = Path("inverter.safetensors"),
    resume: Annotated[bool, typer.Option(help="Continue from --out if it exists.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    threads: Annotated[int, typer.Option(min=0, help="torch CPU threads (0: default).")] = 1,
) -> None:
    """Train an inverter for a zoo model on auxiliary images, validating every epoch."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import gradleak as gl

    if threads:
        torch.set_num_threads(threads)
    settings = parse_assignments(set_ or [])
    defense_spec = parse_defense(defense)
    if defense_spec is not None:
        gl.defenses.create(**defense_spec)  # unknown names fail before any work
    gl.models.MODELS.get(model)
    gl.learned.HEADS.get(head)
    images, labels = gl.data.load(aux, size=size, n=None, split="train", seed=seed,
                                  channels=channels)
    val = _validation(aux, size, channels, seed)
    classes = max(10, int(labels.max()) + 1)
    c, h, w = (int(v) for v in images.shape[1:])
    net = gl.models.create(model, num_classes=classes, in_shape=(c, h, w), seed=model_seed)
    err, con = err_console(), out_console()
    if resume and out.is_file():
        done = gl.learned.load(out, model=net).training.get("epochs_done", 0)
        err.print(f"resuming {out} after epoch {done}", soft_wrap=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=err,
                  disable=not progress) as bar:
        task = bar.add_task("training", total=None, loss="-")

        def report(r: gl.learned.EpochReport) -> None:
            bar.update(task, description=f"epoch {r.epoch}/{r.epochs}", total=r.steps,
                       completed=r.step, loss=f"{r.loss:.4f}")
            if r.val_psnr is not None:
                bar.console.print(f"epoch {r.epoch}/{r.epochs}: loss {r.loss:.4f}, "
                                  f"validation PSNR {r.val_psnr:.2f} dB", soft_wrap=True)

        inv = gl.learned.train(
            net, (images, labels), val=val, batch_size=batch_size, defense=defense_spec,
            head=head, hash_dim=hash_dim or None, hidden=hidden, epochs=epochs, seed=seed,
            callback=report, checkpoint=str(out), resume=resume, **settings,
        )
    hist = inv.training["history"]
    rows = [{"epoch": h["epoch"], "loss": f"{h['loss']:.5f}", "val PSNR (dB)": h["val_psnr"],
             "seconds": h["seconds"], "CPU seconds": h.get("cpu_seconds")} for h in hist]
    con.print(summary_table(f"inverter {head} for {model}, B={batch_size}, "
                            f"defense {inv.spec.defense or 'none'}", rows))
    con.print(f"checkpoint: {out} (training {inv.training['train_seconds']:.0f} s)",
              soft_wrap=True)


@app.command("info")
@friendly_errors
def info_cmd(
    path: Annotated[Path, typer.Argument(help="An inverter checkpoint (.safetensors).")],
) -> None:
    """Print what an inverter was trained for and its validation history."""
    import gradleak as gl

    inv = gl.learned.load(path)
    s = inv.spec
    con = out_console()
    con.print(f"{path}: head {s.head}, batch size {inv.batch_size}, images {inv.image_shape}, "
              f"defense {s.defense or 'none'}, model {s.model_spec or 'custom'}, "
              f"epochs done {inv.training.get('epochs_done')}", soft_wrap=True)
    hist = inv.training.get("history") or []
    if hist:
        con.print(summary_table("validation", [
            {"epoch": h.get("epoch"), "val PSNR (dB)": h.get("val_psnr"),
             "seconds": h.get("seconds")} for h in hist if isinstance(h, dict)]))
