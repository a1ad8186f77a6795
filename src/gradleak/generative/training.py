"""``train``: fit a generative prior (DCGAN or VAE) to a set of images, on one CPU thread.

The loop is shared by every kind (:mod:`gradleak.generative.kinds`): seeded shuffling, optional
horizontal flips, one objective step per batch, a callback after every step, a checkpoint after
every epoch (so ``resume=True`` continues bit-exactly), and at the end batch-norm statistics
re-estimated on samples and folded into the layers
(:func:`~gradleak.generative.arch.fold_batchnorm`).
All randomness comes from one ``torch.Generator`` seeded with ``seed``; the global RNG is left
untouched.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gradleak.config import config_dict
from gradleak.data.base import resize_tensor
from gradleak.errors import ConfigError
from gradleak.generative.arch import GeneratorSpec, build, fold_batchnorm
from gradleak.generative.checkpoint import load_checkpoint, save_checkpoint
from gradleak.generative.data import resolve
from gradleak.generative.io import spec_metadata
from gradleak.generative.kinds import KINDS, Kind, KindSettings
from gradleak.generative.prior import GenerativePrior

#: batches of samples used to re-estimate batch-norm statistics before folding
RECALIBRATION_BATCHES = 16


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained prior (stored in its metadata)."""

    kind: str = "dcgan"
    image_size: int = 32
    channels: int = 1
    epochs: int = 20
    seed: int = 0
    latent_dim: int = 32
    batch_size: int = 64
    lr: float = 0.0  # 0: the kind's default
    width: int = 128
    flip: bool = False
    recon_sigma: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown prior kind {self.kind!r}; choose one of "
                              f"{KINDS.available()}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr < 0 or self.recon_sigma <= 0:
            raise ConfigError("epochs must be >= 0, batch_size >= 1, lr >= 0, recon_sigma > 0")


@dataclass(frozen=True)
class TrainStatus:
    """What the callback of :func:`train` receives after every step.

    Attributes:
        epoch: the current epoch, 1-based.
        epochs: epochs in total.
        step: the step within the epoch, 1-based.
        steps: steps per epoch.
        losses: this step's losses by name.
        end_of_epoch: True on an epoch's last step (after its checkpoint is written).
        snapshot: builds the prior as it is now (folded, eval mode); costly, call per epoch.
    """

    epoch: int
    epochs: int
    step: int
    steps: int
    losses: dict[str, float]
    end_of_epoch: bool
    snapshot: Callable[[], GenerativePrior] = field(repr=False)


@contextmanager
def one_thread() -> Iterator[None]:
    """Runs the block with ``torch.set_num_threads(1)`` and restores the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _images(
    images: Tensor | str, image_size: int, seed: int
) -> tuple[Tensor, str]:
    if isinstance(images, str):
        return resolve(images, image_size=image_size, seed=seed)
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ConfigError("images must be a (N, 1|3, H, W) tensor in [0, 1] or a data spec "
                          "such as 'digits' or 'folder:PATH'")
    if images.shape[-1] != images.shape[-2] or len(images) == 0:
        raise ConfigError(f"images must be a non-empty batch of square images; got "
                          f"{tuple(images.shape)}")
    x = images.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise ConfigError("images must be finite values in [0, 1]")
    return resize_tensor(x, image_size).contiguous(), f"{len(x)} images given as a tensor"


def _snapshot(
    generator: GenerativePrior, spec: GeneratorSpec, cfg: TrainConfig, metadata: dict[str, Any]
) -> GenerativePrior:
    """A folded, frozen copy of the training generator (batch norm re-estimated first)."""
    net = copy.deepcopy(generator)
    if spec.norm == "batch":
        norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the recalibration batches
        rng = torch.Generator().manual_seed(cfg.seed + 1)
        net.train()
        with torch.no_grad():
            for _ in range(RECALIBRATION_BATCHES):
                net(torch.randn(max(cfg.batch_size, 16), cfg.latent_dim, generator=rng))
        net.eval()
        fold_batchnorm(net.stem, net.blocks)
    folded = GeneratorSpec(**{**spec_metadata(spec), "norm": "none"})
    meta = {**metadata, "architecture": spec_metadata(folded)}
    return GenerativePrior(net.stem, net.blocks, net.head, kind=cfg.kind,
                           latent_dim=cfg.latent_dim, image_size=cfg.image_size,
                           channels=cfg.channels, metadata=meta)


def train(
    images: Tensor | str,
    *,
    kind: str = "dcgan",
    image_size: int = 32,
    epochs: int = 20,
    seed: int = 0,
    latent_dim: int = 32,
    batch_size: int = 64,
    lr: float | None = None,
    width: int = 128,
    flip: bool = False,
    recon_sigma: float = 0.1,
    callback: Callable[[TrainStatus], None] | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    data_description: str | None = None,
    command: str | None = None,
) -> GenerativePrior:
    """Trains a generative prior on images of one domain.

    Uses one CPU thread and is deterministic given ``seed`` (the global RNG is untouched).

    Args:
        images: (N, C, H, W) float images in [0, 1] (resized to ``image_size``), or a data spec
            (``"digits"``, ``"faces"``, ``"patches"``, ``"sample"``, ``"mnist:PATH"``,
            ``"cifar10:PATH"``, ``"folder:PATH"``; see :func:`gradleak.generative.data.resolve`).
        kind: ``"dcgan"`` (Radford et al., ICLR 2016) or ``"vae"`` (Kingma & Welling, ICLR 2014).
        image_size: side of the generated images (8, 16, 32, 64, 128 or 256).
        epochs: passes over the images.
        seed: seed of the initialisation, shuffling and noise.
        latent_dim: size of the latent code.
        batch_size: images per step.
        lr: Adam learning rate (None: 2e-4 for dcgan, 1e-3 for vae).
        width: channels of the generator's first feature (halved per block, down to 16).
        flip: augment with random horizontal flips (faces, photos; not digits).
        recon_sigma: the VAE's likelihood scale (smaller: sharper, less regular latent).
        callback: called with a :class:`TrainStatus` after every step.
        checkpoint: a file for the training state, written after every epoch.
        resume: continue from ``checkpoint`` when it exists (same settings; more epochs ok).
        data_description: a line describing the data for the metadata.
        command: the command that made the prior, stored in the metadata.

    Returns:
        The trained prior (eval mode, frozen, batch norm folded).

    Example:
        >>> x = torch.rand(16, 1, 8, 8)
        >>> G = train(x, kind="vae", image_size=8, epochs=1, batch_size=8, latent_dim=4,
        ...           width=16)
        >>> tuple(G(torch.zeros(2, 4)).shape), G.metadata["train"]["epochs"]
        ((2, 1, 8, 8), 1)
    """
    t0 = time.perf_counter()
    x, description = _images(images, image_size, seed)
    cls = KINDS.get(kind)
    cfg = TrainConfig(kind=kind, image_size=image_size, channels=int(x.shape[1]), epochs=epochs,
                      seed=seed, latent_dim=latent_dim, batch_size=min(batch_size, len(x)),
                      lr=cls.default_lr if lr is None else lr, width=width, flip=flip,
                      recon_sigma=recon_sigma)
    spec = GeneratorSpec(latent_dim=latent_dim, image_size=image_size, channels=cfg.channels,
                         width=width, head=cls.head, norm=cls.norm)
    with one_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        stem, blocks, head = build(spec)
        generator = GenerativePrior(stem, blocks, head, kind=kind, latent_dim=latent_dim,
                                    image_size=image_size, channels=cfg.channels)
        generator.requires_grad_(True).train()
        objective: Kind = cls(generator, spec, KindSettings(latent_dim, cfg.lr, recon_sigma))
        for m in objective.modules().values():
            m.train()
        rng = torch.Generator().manual_seed(seed)
        ckpt = Path(checkpoint) if checkpoint is not None else None
        settings = config_dict(cfg)
        done, history = 0, list[dict[str, float]]()
        if ckpt is not None and resume and ckpt.is_file():
            done, history = load_checkpoint(ckpt, objective, rng, settings)
        meta: dict[str, Any] = {
            "data": data_description or description, "num_images": len(x),
            "train": settings, "command": command, "torch": torch.__version__,
        }

        def snapshot() -> GenerativePrior:
            return _snapshot(generator, spec, cfg, {**meta, "history": history})

        steps = max(1, len(x) // cfg.batch_size)
        for epoch in range(done + 1, epochs + 1):
            perm = torch.randperm(len(x), generator=rng)
            sums = dict.fromkeys(cls.loss_names, 0.0)
            for step in range(1, steps + 1):
                batch = x[perm[(step - 1) * cfg.batch_size : step * cfg.batch_size]]
                if cfg.flip:
                    mirror = torch.rand(len(batch), generator=rng) < 0.5
                    batch = torch.where(mirror.view(-1, 1, 1, 1), batch.flip(-1), batch)
                losses = objective.step(batch, rng)
                for k, v in losses.items():
                    sums[k] += v
                if step == steps:
                    history.append({k: v / steps for k, v in sums.items()})
                    if ckpt is not None:
                        save_checkpoint(ckpt, objective, rng, epoch, settings, history)
                if callback is not None:
                    callback(TrainStatus(epoch, epochs, step, steps, losses, step == steps,
                                         snapshot))
        meta["train_seconds"] = round(time.perf_counter() - t0, 2)
        prior = snapshot()
    if not all(math.isfinite(v) for h in history for v in h.values()):
        raise ConfigError("training diverged (non-finite loss); lower lr or change the seed")
    return prior
