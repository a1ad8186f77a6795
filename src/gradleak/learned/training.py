"""Training an inverter on (gradient, image) pairs made on the fly (Learning to Invert).

Wu, Chen, Guo & Weinberger, "Learning to Invert: Simple Adaptive Attacks for Gradient
Inversion in Federated Learning", UAI 2023, Sec. 4: every step draws groups of B auxiliary
images, computes their (defended) batch gradients with the target model
(:class:`~gradleak.learned.pairs.PairMaker`), predicts B images per gradient and minimises
the Hungarian-matched MSE (:func:`~gradleak.learned.matching.hungarian_mse`) with Adam
(lr 1e-4 in the paper, decayed x0.1 after 75% of the epochs; the defaults here are sized
for minutes on one CPU thread, see :class:`TrainSettings` and :func:`train`). After every
epoch the mean PSNR on held-out images is recorded (also after Hungarian matching).

Randomness is seeded per epoch (``seed``, epoch), so resuming from a checkpoint written after
epoch e continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass

import torch
from torch import Tensor, nn

from gradleak.config import with_overrides
from gradleak.defenses import Defense
from gradleak.errors import ConfigError
from gradleak.learned.auxdata import AuxData, check_images, random_shift, resolve_aux
from gradleak.learned.fingerprint import architecture_fingerprint, parameter_fingerprint
from gradleak.learned.heads import HeadSettings, build_head
from gradleak.learned.inverter import Inverter, load_with_extras
from gradleak.learned.matching import hungarian_mse
from gradleak.learned.optim_state import optimizer_from_tensors, optimizer_to_tensors
from gradleak.learned.pairs import PairMaker
from gradleak.learned.spec import InverterSpec, layout_of
from gradleak.metrics import psnr
from gradleak.simulate import DefenseSpec, _resolve_defense, forward_logits
from gradleak.types import Normalization

__all__ = ["EpochReport", "TrainSettings", "train"]


@dataclass(frozen=True)
class TrainSettings:
    """Settings of :func:`train` (the head's sizes are in :class:`HeadSettings`).

    Attributes:
        epochs: passes over the auxiliary training images.
        lr: Adam's learning rate. The paper uses 1e-4 for 200 epochs of 50 000 CIFAR
            images; with minutes of CPU (8 epochs of ~1400 digits) 3e-4 reached a higher
            validation PSNR (18.7 vs 17.4 dB after 3 epochs, LeNet, B = 1, hidden 1000).
        decay_at: fraction of the epochs after which the lr is multiplied by 0.1 (0.75).
        groups_per_step: updates (groups of B images) per optimiser step.
        val_fraction: share of the auxiliary images held out for validation when no
            validation images are given.
        calibration_groups: updates used to set the ``mlp`` head's feature statistics.
        row_layers: last Linear layers read by the ``rows`` head.
        shift: augmentation: every training image is translated by up to this many pixels
            (uniform per axis, edges replicated; :func:`~gradleak.learned.auxdata.random_shift`)
            before its gradient is computed; 0 turns it off.
    """

    epochs: int = 8
    lr: float = 3e-4
    decay_at: float = 0.75
    groups_per_step: int = 32
    val_fraction: float = 0.1
    calibration_groups: int = 256
    row_layers: int = 1
    shift: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "groups_per_step", "calibration_groups", "row_layers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise ConfigError(f"shift must be an integer >= 0, got {self.shift!r}")
        if not self.lr > 0 or not 0 < self.decay_at <= 1 or not 0 <= self.val_fraction < 1:
            raise ConfigError("need lr > 0, 0 < decay_at <= 1 and 0 <= val_fraction < 1")


@dataclass(frozen=True)
class EpochReport:
    """Passed to ``callback`` while training: after every step and every epoch."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    val_psnr: float | None = None


def _defense_settings(dfn: Defense | None) -> dict[str, object] | None:
    if dfn is None:
        return None
    fields: dict[str, object] = asdict(dfn) if is_dataclass(dfn) else {}
    return {"name": dfn.name, **fields}


def _split(images: Tensor, labels: Tensor | None, fraction: float, batch: int, seed: int
           ) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_val = max(batch, int(round(fraction * len(images)))) if fraction > 0 else 0
    val, tr = perm[:n_val], perm[n_val:]
    lab = (lambda idx: labels[idx]) if labels is not None else (lambda idx: None)
    return images[tr], lab(tr), images[val], lab(val)


def _labels(labels: Tensor | None, idx: Tensor, num_classes: int, gen: torch.Generator
            ) -> Tensor:
    if labels is not None:
        return labels[idx]
    return torch.randint(0, num_classes, idx.shape, generator=gen)


def _groups(n: int, batch: int, gen: torch.Generator) -> Tensor:
    perm = torch.randperm(n, generator=gen)
    count = n // batch
    return perm[: count * batch].view(count, batch)


def validate(inv: Inverter, maker: PairMaker, images: Tensor, labels: Tensor | None,
             *, seed: int, groups_per_step: int) -> float:
    """Mean PSNR (dB) of the inverter on held-out images, after Hungarian matching."""
    gen = torch.Generator().manual_seed(seed + 7919)
    groups = _groups(len(images), inv.batch_size, gen)
    inv.head.eval()
    scores = []
    with torch.no_grad():
        for s in range(0, len(groups), groups_per_step):
            idx = groups[s: s + groups_per_step]
            x = images[idx]
            y = _labels(labels, idx, inv.spec.num_classes, gen)
            pred = inv.head(maker.updates(x, y, generator=gen), y)
            _, assign = hungarian_mse(pred, x)
            matched = x.gather(1, assign.view(*assign.shape, 1, 1, 1).expand_as(x))
            scores.append(psnr(pred.flatten(0, 1), matched.flatten(0, 1)))
    inv.head.train()
    return float(torch.cat(scores).mean()) if scores else float("nan")


def train(
    model: nn.Module,
    aux: AuxData,
    *,
    batch_size: int = 1,
    defense: DefenseSpec = None,
    head: str = "mlp",
    hash_dim: int | None = 16384,
    hidden: int = 1000,
    epochs: int = 8,
    seed: int = 0,
    val: AuxData | None = None,
    normalization: Normalization | None = None,
    loss: str | None = None,
    callback: Callable[[EpochReport], None] | None = None,
    checkpoint: str | None = None,
    resume: bool = False,
    **settings: object,
) -> Inverter:
    """Trains an inverter for ``model`` (Wu et al., "Learning to Invert", UAI 2023).

    Args:
        model: the target model exactly as the server sends it (its parameters are recorded
            by fingerprint; the inverter is refused for other parameters).
        aux: auxiliary images: a ``gl.data`` name, a tensor, or ``(images, labels)``.
        batch_size: the client's batch size B (updates average B per-image gradients).
        defense: the client's defense (name, ``{"name": ..., **settings}`` or a Defense),
            applied to every training update.
        head: ``"mlp"`` (the paper's), ``"rows"`` (gradient-shaped, last layers only) or
            ``"units"`` (one decoder shared by the labels' rows of the last layer; trained on
            the true labels, applied with shared or recovered ones; :mod:`.units`).
        hash_dim: feature-hash buckets for the ``mlp`` head (None or >= the update size:
            the whole update).
        hidden: width of the MLP's two hidden layers. The paper uses 3000 for B = 1 and
            10000 for B = 4; the default 1000 trains about 3x faster on a CPU (pass
            ``hidden=3000, lr=1e-4`` for the paper's network and learning rate).
        epochs: passes over the training images.
        seed: seed of the head's initialisation, the hash, the split and the sampling.
        val: held-out images for the per-epoch validation PSNR (default: ``val_fraction`` of
            ``aux``).
        normalization: the client's input normalisation.
        loss: the client's loss name (default: the model's, else cross-entropy).
        callback: called with an :class:`EpochReport` after every step and epoch.
        checkpoint: a file written after every epoch (safetensors; resumable).
        resume: continue from ``checkpoint`` if it exists (same settings required, except
            ``epochs``, which may grow; the lr decay then follows the new count).
        **settings: fields of :class:`TrainSettings` and ``signed_hash``, ``row_width``,
            ``context`` (of :class:`HeadSettings`).

    Returns:
        The trained :class:`Inverter`; ``inv.training["history"]`` holds the per-epoch loss,
        validation PSNR and seconds.

    Example:
        >>> import torch, gradleak as gl
        >>> model = gl.models.create("lenet", in_shape=(1, 8, 8))
        >>> inv = gl.learned.train(model, torch.rand(40, 1, 8, 8), hidden=32, epochs=1)
        >>> inv.invert([torch.zeros(p.shape) for p in model.parameters()]).shape
        torch.Size([1, 1, 8, 8])
    """
    head_keys = {"signed_hash", "row_width", "context"}
    hs = with_overrides(HeadSettings(hidden=hidden, hash_dim=hash_dim, hash_seed=seed),
                        "inverter head", **{k: v for k, v in settings.items() if k in head_keys})
    ts = with_overrides(TrainSettings(epochs=epochs), "inverter training",
                        **{k: v for k, v in settings.items() if k not in head_keys})
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    dfn = _resolve_defense(defense)
    images, labels = resolve_aux(aux, model, seed=seed)
    if val is None:
        images, labels, v_images, v_labels = _split(images, labels, ts.val_fraction,
                                                    batch_size, seed)
    else:
        v_images, v_labels = resolve_aux(val, model, split="holdout", seed=seed)
        v_images, v_labels = check_images(v_images, v_labels, "val")
    if len(images) < batch_size:
        raise ConfigError(f"need at least {batch_size} auxiliary training images")
    image_shape = tuple(images.shape[1:])
    with torch.no_grad():
        probe = forward_logits(model, images[:1], normalization)
    loss_name = str(loss or getattr(model, "gradleak_loss", "cross_entropy"))
    layout, names = layout_of(model, image_shape, batch_size, ts.row_layers)  # type: ignore[arg-type]
    spec = InverterSpec(
        head=head, settings=hs, layout=layout, param_names=names,
        num_classes=2 if loss_name == "logistic" else int(probe.shape[1]),
        architecture=architecture_fingerprint(model), parameters=parameter_fingerprint(model),
        defense=dfn.describe() if dfn else None, defense_settings=_defense_settings(dfn),
        loss=loss_name,
        normalization=(tuple(normalization.mean), tuple(normalization.std))
        if normalization else None,
        train_mode=model.training, model_spec=getattr(model, "gradleak_spec", None),
    )
    maker = PairMaker(model, defense=dfn, loss=loss_name, normalization=normalization,
                      train_mode=model.training)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_head(head, layout, hs)
    inv = Inverter(spec, net, {"settings": asdict(ts), "epochs_done": 0, "history": [],
                               "train_seconds": 0.0})
    opt = torch.optim.Adam(net.parameters(), lr=ts.lr)
    if resume and checkpoint is not None and _exists(checkpoint):
        inv = _resume(inv, opt, checkpoint, model)
    else:
        gen = torch.Generator().manual_seed(seed)
        idx = _groups(len(images), batch_size, gen)[: ts.calibration_groups]
        y = _labels(labels, idx, spec.num_classes, gen)
        net.calibrate(maker.updates(images[idx], y, generator=gen), y)
    _run_epochs(inv, opt, maker, ts, images, labels, v_images, v_labels, seed, callback,
                checkpoint)
    inv.head.eval()
    return inv


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_file()


def _resume(fresh: Inverter, opt: torch.optim.Optimizer, path: str, model: nn.Module
            ) -> Inverter:
    old, extras = load_with_extras(path, model)
    def same(a: object) -> object:  # more epochs may be asked for when resuming
        return {k: v for k, v in a.items() if k != "epochs"} if isinstance(a, dict) else a

    if old.spec != fresh.spec or same(old.training.get("settings")) != same(
            fresh.training["settings"]):
        raise ConfigError(f"{path} was written with other settings; resume with the same "
                          "settings or choose another --out")
    optimizer_from_tensors(opt, extras)
    fresh.head.load_state_dict(old.head.state_dict())
    fresh.training = {**old.training, "settings": fresh.training["settings"]}
    return fresh


def _run_epochs(inv: Inverter, opt: torch.optim.Optimizer, maker: PairMaker, ts: TrainSettings,
                images: Tensor, labels: Tensor | None, v_images: Tensor,
                v_labels: Tensor | None, seed: int,
                callback: Callable[[EpochReport], None] | None, checkpoint: str | None) -> None:
    B, G = inv.batch_size, ts.groups_per_step
    decay_epoch = int(ts.decay_at * ts.epochs)
    history = inv.training["history"]
    inv.head.train()
    for epoch in range(int(inv.training["epochs_done"]), ts.epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        lr = ts.lr * (0.1 if epoch >= decay_epoch else 1.0)
        for group in opt.param_groups:
            group["lr"] = lr
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 1)
        groups = _groups(len(images), B, gen)
        steps = max(1, -(-len(groups) // G))
        total, count = 0.0, 0
        for step in range(steps):
            idx = groups[step * G: (step + 1) * G]
            x = random_shift(images[idx], ts.shift, gen) if ts.shift else images[idx]
            y = _labels(labels, idx, inv.spec.num_classes, gen)
            loss, _ = hungarian_mse(inv.head(maker.updates(x, y, generator=gen), y), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            if callback is not None:
                callback(EpochReport(epoch + 1, ts.epochs, step + 1, steps, float(loss.detach())))
        val_psnr = (validate(inv, maker, v_images, v_labels, seed=seed, groups_per_step=G)
                    if len(v_images) >= B else None)
        history.append({"epoch": epoch + 1, "loss": total / max(count, 1), "lr": lr,
                        "val_psnr": val_psnr, "seconds": time.perf_counter() - t0,
                        "cpu_seconds": time.process_time() - c0})
        inv.training["epochs_done"] = epoch + 1
        inv.training["train_seconds"] = sum(h["seconds"] for h in history)
        inv.training["train_cpu_seconds"] = sum(h.get("cpu_seconds", 0.0) for h in history)
        if callback is not None:
            callback(EpochReport(epoch + 1, ts.epochs, steps, steps, total / max(count, 1),
                                 val_psnr))
        if checkpoint is not None:
            inv.save(checkpoint, extra_tensors=optimizer_to_tensors(opt))
