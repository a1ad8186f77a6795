"""``gradleak prior``: train, resume and inspect generative priors from the command line.

Commands:

* ``gradleak prior train --data digits --kind vae --size 32 --epochs 20 --out prior.safetensors``
  trains a prior (progress bar with the losses), writes a grid of samples next to the output
  after every epoch (``prior.samples.png``) and a checkpoint (``prior.safetensors.ckpt``);
  ``--resume`` continues from that checkpoint.
* ``gradleak prior show prior.safetensors --out grid.png`` draws samples of a prior (a file
  or a shipped name) and prints its metadata.

``--data`` is ``sample``, ``digits``, ``faces``, ``patches`` or ``NAME:PATH`` for data on disk
(``mnist:PATH``, ``cifar10:PATH``, ``folder:PATH``); see :mod:`gradleak.generative.data`.
Only parsing and printing live here; the work is :func:`gradleak.generative.train`.
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gradleak.errors import ConfigError

app = typer.Typer(name="prior", help="Train, resume and inspect generative priors.",
                  no_args_is_help=True, add_completion=False)

F = TypeVar("F", bound=Callable[..., Any])


def _friendly(fn: F) -> F:
    """:func:`gradleak.cli.friendly_errors`, looked up at call time (no import cycle)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from gradleak.cli import friendly_errors

        return friendly_errors(fn)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def samples_path(out: Path) -> Path:
    """Where ``prior train`` writes the per-epoch sample grid for the prior file ``out``."""
    return out.with_name(out.name.removesuffix(".safetensors") + ".samples.png")


def save_samples(prior: Any, path: Path, *, n: int = 64, seed: int = 0,
                 title: str | None = None) -> Path:
    """Draws ``n`` samples of ``prior`` (seeded latents) as a PNG grid, 8 per row."""
    import torch

    from gradleak.report.grids import compose, to_uint8

    with torch.no_grad():
        images = prior(prior.sample_latent(n, torch.Generator().manual_seed(seed)))
    path.parent.mkdir(parents=True, exist_ok=True)
    compose([to_uint8(images)], title=title, target=64, max_cols=8).save(path, format="PNG")
    return path


@contextmanager
def _bar(console: Console, enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[losses]}"), TimeElapsedColumn(), console=console,
                  transient=False) as prog:
        yield prog


@app.command("train")
@_friendly
def train_cmd(
    data: Annotated[str, typer.Option(help="sample|digits|faces|patches|mnist:PATH|"
                                           "cifar10:PATH|folder:PATH")],
    out: Annotated[Path, typer.Option(help="The prior file to write (.safetensors).")],
    kind: Annotated[str, typer.Option(help="dcgan or vae.")] = "dcgan",
    size: Annotated[int, typer.Option(help="Image side: 8, 16, 32, 64, ...")] = 32,
    epochs: Annotated[int, typer.Option(help="Passes over the data.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of everything random.")] = 0,
    latent_dim: Annotated[int, typer.Option(help="Latent size.")] = 32,
    width: Annotated[int, typer.Option(help="Channels of the first generator feature.")] = 128,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 64,
    lr: Annotated[float | None, typer.Option(help="Adam lr (default: per kind).")] = None,
    flip: Annotated[bool, typer.Option(help="Random horizontal flips.")] = False,
    channels: Annotated[int | None, typer.Option(help="Force 1 or 3 channels.")] = None,
    max_images: Annotated[int | None, typer.Option(help="Use at most this many.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the output's checkpoint.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a generative prior (DCGAN or VAE) on a dataset and save it."""
    from gradleak.generative import train
    from gradleak.generative.checkpoint import checkpoint_path
    from gradleak.generative.data import resolve

    out = out if out.name.endswith(".safetensors") else out.with_name(out.name + ".safetensors")
    ckpt = checkpoint_path(out)
    if (out.exists() or ckpt.exists()) and not resume:
        raise ConfigError(f"{out} (or its checkpoint) exists; pass --resume to continue its "
                          "training, or choose another --out")
    if resume and not ckpt.exists():
        raise ConfigError(f"--resume: there is no checkpoint {ckpt} to continue from")
    images, description = resolve(data, image_size=size, channels=channels,
                                  max_images=max_images, seed=seed)
    err = Console(stderr=True, highlight=False)
    err.print(f"training a {kind} prior on {description}", soft_wrap=True)
    grid = samples_path(out)
    with _bar(err, progress) as bar:
        task = None if bar is None else bar.add_task("train", total=None, epoch="", losses="")

        def on_step(status: Any) -> None:
            if bar is not None and task is not None:
                losses = "  ".join(f"{k} {v:.4g}" for k, v in status.losses.items())
                bar.update(task, completed=status.step, total=status.steps,
                           epoch=f"{status.epoch}/{status.epochs}", losses=losses)
            if status.end_of_epoch:
                save_samples(status.snapshot(), grid, seed=seed,
                             title=f"{kind} on {data}, epoch {status.epoch}")

        prior = train(images, kind=kind, image_size=size, epochs=epochs, seed=seed,
                      latent_dim=latent_dim, width=width, batch_size=batch_size, lr=lr,
                      flip=flip, callback=on_step, checkpoint=ckpt, resume=resume,
                      data_description=description,
                      command=shlex.join(["gradleak", *sys.argv[1:]]))
    path = prior.save(out)
    Console(highlight=False).print(
        f"prior: {path} ({path.stat().st_size / 1e6:.2f} MB); samples: {grid}; "
        f"checkpoint: {ckpt}", soft_wrap=True)


@app.command("show")
@_friendly
def show_cmd(
    prior: Annotated[str, typer.Argument(help="A prior file or a shipped name.")],
    out: Annotated[Path, typer.Option(help="The PNG grid to write.")] = Path("prior.png"),
    n: Annotated[int, typer.Option(help="How many samples.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the latents.")] = 0,
) -> None:
    """Draw a grid of samples of a prior and print its metadata."""
    from gradleak.generative import load

    if n < 1:
        raise ConfigError("--n must be at least 1")
    G = load(prior)
    path = save_samples(G, out, n=n, seed=seed, title=f"{prior}: {G.kind}, seed {seed}")
    meta = {k: v for k, v in G.metadata.items() if k != "history"}
    console = Console(highlight=False)
    console.print(json.dumps(meta, indent=2, sort_keys=True), soft_wrap=True, markup=False)
    console.print(f"samples: {path}", soft_wrap=True)
