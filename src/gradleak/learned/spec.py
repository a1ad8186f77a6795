"""What an inverter was trained for: the JSON half of its checkpoint, validated on load.

The record names the target model (architecture and parameter fingerprints), the client's
batch size, defense, loss, normalisation, image shape and number of classes, plus the
head's sizes. :func:`spec_from_json` validates every field of an untrusted checkpoint and
raises :class:`~gradleak.errors.DataError` naming the first bad one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from gradleak.errors import DataError
from gradleak.learned.heads import HEADS, HeadSettings, Layout
from gradleak.types import trainable_parameters

__all__ = ["InverterSpec", "layout_of", "spec_from_json", "spec_to_json"]


@dataclass(frozen=True)
class InverterSpec:
    """The target and the head of one inverter.

    Attributes:
        head: the registered head name (``mlp`` or ``rows``).
        settings: the head's sizes.
        layout: parameter shapes, rows read, image shape, batch size.
        param_names: trainable parameter names of the target model, in order.
        num_classes: outputs of the target model.
        architecture: SHA-256 fingerprint of the model's architecture.
        parameters: SHA-256 fingerprint of the model's parameter values.
        defense: the client defense's description (``Defense.describe()``), or None.
        defense_settings: ``{"name": ..., **fields}`` to rebuild it (resume), or None.
        loss: the client's registered loss name.
        normalization: ``[mean, std]`` per channel, or None.
        train_mode: whether the client ran the model in training mode.
        model_spec: the zoo name and kwargs of the model, if known.
    """

    head: str
    settings: HeadSettings
    layout: Layout
    param_names: tuple[str, ...]
    num_classes: int
    architecture: str
    parameters: str
    defense: str | None
    defense_settings: dict[str, Any] | None
    loss: str
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None
    train_mode: bool
    model_spec: dict[str, Any] | None


def layout_of(model: nn.Module, image_shape: tuple[int, int, int], batch_size: int,
              row_layers: int) -> tuple[Layout, tuple[str, ...]]:
    """The head layout of ``model`` and its trainable parameter names.

    ``row_layers`` picks the last that many ``nn.Linear`` modules (in module order) whose
    weight is trainable.
    """
    params = trainable_parameters(model)
    names = tuple(n for n, _ in params)
    index = {n: i for i, n in enumerate(names)}
    rows: list[tuple[int, int]] = []
    for mname, module in model.named_modules():
        if isinstance(module, nn.Linear):
            w = index.get(f"{mname}.weight" if mname else "weight")
            b = index.get(f"{mname}.bias" if mname else "bias", -1)
            if w is not None:
                rows.append((w, b))
    picked = tuple(rows[-row_layers:]) if row_layers > 0 else ()
    layout = Layout(
        param_shapes=tuple(tuple(p.shape) for _, p in params),
        row_params=picked,
        image_shape=image_shape,
        batch_size=batch_size,
    )
    return layout, names


def spec_to_json(spec: InverterSpec) -> dict[str, Any]:
    """A JSON-friendly dict of ``spec``."""
    out = dataclasses.asdict(spec)
    out["layout"]["param_shapes"] = [list(s) for s in spec.layout.param_shapes]
    out["layout"]["row_params"] = [list(r) for r in spec.layout.row_params]
    out["layout"]["image_shape"] = list(spec.layout.image_shape)
    out["param_names"] = list(spec.param_names)
    out["normalization"] = ([list(v) for v in spec.normalization]
                            if spec.normalization is not None else None)
    return out


# ------------------------------------------------------------------------------ validation
def _bad(field: str, want: str) -> DataError:
    return DataError(
        f"the inverter checkpoint's field {field!r} is missing or invalid (expected {want}); "
        "the file is corrupt or not a gradleak inverter — retrain it with gradleak learn train"
    )


def _int(d: dict[str, Any], key: str, lo: int = 1) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _bad(key, f"an integer >= {lo}")
    return v


def _str(d: dict[str, Any], key: str, *, optional: bool = False) -> Any:
    v = d.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v:
        raise _bad(key, "a string")
    return v


def _ints(v: Any, key: str, lo: int = 0) -> tuple[int, ...]:
    if not isinstance(v, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= lo for x in v):
        raise _bad(key, f"a list of integers >= {lo}")
    return tuple(v)


def _floats(v: Any, key: str) -> tuple[float, ...]:
    if not isinstance(v, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in v):
        raise _bad(key, "a list of numbers")
    return tuple(float(x) for x in v)


def _settings(d: Any) -> HeadSettings:
    if not isinstance(d, dict):
        raise _bad("settings", "an object")
    hash_dim = d.get("hash_dim")
    if hash_dim is not None:
        hash_dim = _int(d, "hash_dim")
    if not isinstance(d.get("signed_hash"), bool):
        raise _bad("signed_hash", "true or false")
    return HeadSettings(hidden=_int(d, "hidden"), hash_dim=hash_dim,
                        signed_hash=d["signed_hash"], hash_seed=_int(d, "hash_seed", 0),
                        row_width=_int(d, "row_width"),
                        context=_int({"context": d.get("context", 0)}, "context", 0))


def _layout(d: Any) -> Layout:
    if not isinstance(d, dict):
        raise _bad("layout", "an object")
    shapes = d.get("param_shapes")
    if not isinstance(shapes, list) or not shapes:
        raise _bad("param_shapes", "a list of shapes")
    rows = d.get("row_params")
    if not isinstance(rows, list):
        raise _bad("row_params", "a list of [weight, bias] indices")
    row_params = tuple(_ints(r, "row_params", -1) for r in rows)
    if any(len(r) != 2 or not 0 <= r[0] < len(shapes) or r[1] >= len(shapes)
           for r in row_params):
        raise _bad("row_params", "indices of parameters")
    image_shape = _ints(d.get("image_shape"), "image_shape", 1)
    if len(image_shape) != 3:
        raise _bad("image_shape", "[C, H, W]")
    return Layout(
        param_shapes=tuple(_ints(s, "param_shapes", 1) for s in shapes),
        row_params=row_params,  # type: ignore[arg-type]
        image_shape=image_shape,  # type: ignore[arg-type]
        batch_size=_int(d, "batch_size"),
    )


def spec_from_json(d: Any) -> InverterSpec:
    """Validates and converts the JSON record of an (untrusted) checkpoint.

    Raises:
        DataError: a field is missing or has the wrong type or range.
    """
    if not isinstance(d, dict):
        raise _bad("spec", "an object")
    head = _str(d, "head")
    if head not in HEADS:
        raise _bad("head", f"one of {HEADS.available()}")
    layout = _layout(d.get("layout"))
    names = d.get("param_names")
    if not isinstance(names, list) or len(names) != len(layout.param_shapes) or not all(
            isinstance(n, str) for n in names):
        raise _bad("param_names", "one name per parameter shape")
    dset = d.get("defense_settings")
    if dset is not None and not (isinstance(dset, dict) and isinstance(dset.get("name"), str)):
        raise _bad("defense_settings", "an object with a 'name'")
    norm = d.get("normalization")
    normalization = None
    if norm is not None:
        if not isinstance(norm, list) or len(norm) != 2:
            raise _bad("normalization", "[mean, std]")
        normalization = (_floats(norm[0], "normalization"), _floats(norm[1], "normalization"))
    if not isinstance(d.get("train_mode"), bool):
        raise _bad("train_mode", "true or false")
    mspec = d.get("model_spec")
    if mspec is not None and not isinstance(mspec, dict):
        raise _bad("model_spec", "an object")
    return InverterSpec(
        head=head,
        settings=_settings(d.get("settings")),
        layout=layout,
        param_names=tuple(names),
        num_classes=_int(d, "num_classes"),
        architecture=_str(d, "architecture"),
        parameters=_str(d, "parameters"),
        defense=_str(d, "defense", optional=True),
        defense_settings=dset,
        loss=_str(d, "loss"),
        normalization=normalization,
        train_mode=d["train_mode"],
        model_spec=mspec,
    )
