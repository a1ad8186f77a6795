"""A trained inverter: gradient -> images in one forward pass, tied to one target model.

An :class:`Inverter` holds a head network (:mod:`.heads`) and the record of what it was
trained for (:class:`~gradleak.learned.spec.InverterSpec`). :meth:`Inverter.check` refuses an
observation from another model, other parameters, batch size, defense, loss, normalisation or
image shape; :meth:`Inverter.save` / :func:`load` use one safetensors file whose header
metadata holds the JSON record (no pickle; every field is validated on load).

Reference: Wu, Chen, Guo & Weinberger, "Learning to Invert: Simple Adaptive Attacks for
Gradient Inversion in Federated Learning", UAI 2023.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gradleak.errors import DataError, ObservationError, ThreatModelError
from gradleak.learned.fingerprint import architecture_fingerprint, parameter_fingerprint
from gradleak.learned.heads import Head, build_head
from gradleak.learned.spec import InverterSpec, spec_from_json, spec_to_json
from gradleak.types import Observation

__all__ = ["FORMAT", "Inverter", "load"]

FORMAT = "gradleak.inverter/1"


class Inverter:
    """A network trained to map one model's updates to the batches behind them.

    Build one with :func:`gradleak.learned.train`; use it with
    ``gl.reconstruct(obs, attack="lti", inverter=inv)``.

    Attributes:
        spec: what it was trained for and its head's sizes.
        head: the network (``torch.nn.Module``).
        training: the training record (epochs done, validation PSNR per epoch, seconds, the
            settings); JSON-friendly.
    """

    def __init__(self, spec: InverterSpec, head: Head, training: dict[str, Any] | None = None
                 ) -> None:
        self.spec = spec
        self.head = head
        self.training: dict[str, Any] = dict(training or {})

    @property
    def batch_size(self) -> int:
        """Images B behind one update."""
        return self.spec.layout.batch_size

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images it outputs."""
        return self.spec.layout.image_shape

    def __repr__(self) -> str:
        return (f"Inverter(head={self.spec.head!r}, batch_size={self.batch_size}, "
                f"image_shape={self.image_shape}, defense={self.spec.defense!r})")

    # ------------------------------------------------------------------ use
    @property
    def needs_labels(self) -> bool:
        """Whether :meth:`invert` needs the batch's labels (the ``units`` head)."""
        return bool(self.head.needs_labels)

    def invert(self, update: Sequence[Tensor], labels: Tensor | None = None) -> Tensor:
        """Images (B, C, H, W) in [0, 1] from one update (one tensor per parameter).

        ``labels`` (B,) are needed by heads with :attr:`needs_labels` (the images then come
        in their order) and ignored by the others.
        """
        shapes = self.spec.layout.param_shapes
        if len(update) != len(shapes) or any(
                tuple(u.shape) != s for u, s in zip(update, shapes, strict=False)):
            raise ObservationError(
                "the update does not have the shapes of the model this inverter was trained "
                f"for ({len(shapes)} tensors); pass the matching observation"
            )
        self.head.eval()
        with torch.no_grad():
            ref = next(self.head.parameters())
            batch = [u.detach().to(ref.device, ref.dtype).unsqueeze(0) for u in update]
            lab = None if labels is None else labels.detach().to(ref.device).view(1, -1)
            return self.head(batch, lab)[0].clamp(0, 1).cpu()

    def mismatches(self, obs: Observation) -> list[str]:
        """Sentences naming every way ``obs`` differs from what the inverter was trained for."""
        s = self.spec
        out: list[str] = []
        if obs.kind != "gradient":
            out.append("it was trained on FedSGD gradients, the observation is a FedAvg delta")
        if architecture_fingerprint(obs.model) != s.architecture:
            out.append("it was trained for another model architecture")
        elif parameter_fingerprint(obs.model) != s.parameters:
            out.append("it was trained for other parameters of this model (the global model "
                       "changed); train an inverter for the parameters the server sent")
        if obs.batch_size is None:
            out.append(f"the observation does not share its batch size (the inverter assumes "
                       f"{self.batch_size})")
        elif obs.batch_size != self.batch_size:
            out.append(f"it was trained for batch size {self.batch_size}, the observation has "
                       f"{obs.batch_size}")
        if obs.defense != s.defense:
            out.append(f"it was trained for defense {s.defense or 'none'}, the client claims "
                       f"{obs.defense or 'none'}")
        if tuple(obs.data_shape) != tuple(self.image_shape):
            out.append(f"it outputs images of shape {self.image_shape}, the observation's are "
                       f"{tuple(obs.data_shape)}")
        if obs.num_classes != s.num_classes or obs.loss != s.loss:
            out.append(f"it was trained for {s.num_classes} classes and loss {s.loss!r}, the "
                       f"observation has {obs.num_classes} and {obs.loss!r}")
        norm = obs.normalization
        have = (tuple(norm.mean), tuple(norm.std)) if norm is not None else None
        if have != s.normalization:
            out.append("it was trained with another input normalisation")
        if obs.train_mode != s.train_mode:
            out.append("it was trained with the model in "
                       f"{'training' if s.train_mode else 'evaluation'} mode")
        return out

    def check(self, obs: Observation) -> None:
        """Raises :class:`ThreatModelError` when ``obs`` is not what the inverter was trained for.

        Example:
            >>> inv.check(obs)   # doctest: +SKIP
        """
        bad = self.mismatches(obs)
        if bad:
            raise ThreatModelError(
                "this inverter does not fit the observation: " + "; ".join(bad)
                + ". Train one for it with gl.learned.train(obs.model, aux, batch_size=..., "
                "defense=...)"
            )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, extra_tensors: dict[str, Tensor] | None = None) -> Path:
        """Writes one safetensors file: the head's weights plus JSON metadata (no pickle).

        Args:
            path: the file to write (replaced atomically).
            extra_tensors: more tensors to store under their own keys (e.g. optimiser state
                for resuming), prefixed ``extra.``.
        """
        from safetensors.torch import save_file

        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"head.{k}": v.detach().cpu().contiguous()
                   for k, v in self.head.state_dict().items()}
        for k, v in (extra_tensors or {}).items():
            tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
        meta = {
            "format": FORMAT,
            "spec": json.dumps(spec_to_json(self.spec)),
            "training": json.dumps(self.training),
        }
        tmp = out.with_name(out.name + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, out)
        return out


def _read(path: Path) -> tuple[dict[str, str], dict[str, Tensor]]:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise DataError(f"no inverter at {path}; train one with gradleak learn train")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable safetensors file ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise DataError(f"{path} is not a gradleak inverter checkpoint (format {FORMAT})")
    return meta, tensors


def load_with_extras(path: str | Path, model: nn.Module | None = None
                     ) -> tuple[Inverter, dict[str, Tensor]]:
    """:func:`load`, also returning the ``extra.`` tensors (resume state), keys unprefixed."""
    src = Path(path)
    meta, tensors = _read(src)
    try:
        spec = spec_from_json(json.loads(meta.get("spec", "")))
        training = json.loads(meta.get("training", "{}"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{src}: corrupt metadata ({exc})") from exc
    if not isinstance(training, dict):
        raise DataError(f"{src}: corrupt training record")
    head = build_head(spec.head, spec.layout, spec.settings)
    expected = head.state_dict()
    state = {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
    if set(state) != set(expected):
        raise DataError(f"{src}: the stored weights do not fit a {spec.head!r} head of these "
                        "sizes; the file is corrupt")
    for k, v in state.items():
        if v.shape != expected[k].shape or v.dtype != expected[k].dtype:
            raise DataError(f"{src}: weight {k!r} has shape {tuple(v.shape)}, expected "
                            f"{tuple(expected[k].shape)}; the file is corrupt")
        if v.dtype.is_floating_point and not torch.isfinite(v).all():
            raise DataError(f"{src}: weight {k!r} contains NaN or inf")
    head.load_state_dict(state)
    hashing = getattr(head, "hash", None)
    if hashing is not None:
        hashing.validate()
    inv = Inverter(spec, head, training)
    if model is not None:
        _check_model(inv, model, src)
    extras = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return inv, extras


def _check_model(inv: Inverter, model: nn.Module, src: Path) -> None:
    if architecture_fingerprint(model) != inv.spec.architecture:
        raise ThreatModelError(
            f"{src} was trained for another model architecture; train an inverter for this "
            "model (gradleak learn train --model ...)"
        )
    if parameter_fingerprint(model) != inv.spec.parameters:
        raise ThreatModelError(
            f"{src} was trained for other parameters of this model (a different seed or "
            "training round); train an inverter for the parameters the server sends"
        )


def load(path: str | Path, model: nn.Module | None = None) -> Inverter:
    """Loads an inverter saved by :meth:`Inverter.save`.

    Args:
        path: the ``.safetensors`` file.
        model: the target model; when given, a checkpoint trained for another architecture or
            other parameters is refused.

    Raises:
        DataError: the file is missing, corrupt or not an inverter.
        ThreatModelError: it was trained for another model or other parameters.

    Example:
        >>> inv = gl.learned.load("inverter.safetensors", model=model)   # doctest: +SKIP
    """
    return load_with_extras(path, model)[0]
