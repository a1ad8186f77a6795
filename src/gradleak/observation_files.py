"""A saved :class:`~gradleak.Observation`: writing it, and reading it back from files that may
come from others.

The folder holds ``meta.json`` (checked field by field against
:func:`gradleak.schema.observation_meta_schema`) and ``tensors.safetensors`` (parsed by
safetensors, never unpickled). The order of checks is chosen so that nothing large is
allocated on the word of the file: the metadata is validated first, a zoo model named in
``model_spec`` is sized on the ``meta`` device against ``Limits.max_parameters``, the tensor
file's size is checked against ``Limits.max_file_bytes``, and only then are tensors read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from gradleak import safeio
from gradleak.errors import DataError, GradleakError, ObservationError
from gradleak.schema import Limits, check, check_observation_meta, observation_meta_schema

if TYPE_CHECKING:
    from gradleak.types import Observation

META = "meta.json"
TENSORS = "tensors.safetensors"


def write_observation(obs: Observation, path: Path) -> Path:
    """Writes ``obs`` to the folder ``path``: model state and update as safetensors, the rest
    as JSON (no pickle). Returns the folder."""
    import dataclasses

    from safetensors.torch import save

    from gradleak.persistence.files import write_artifact, write_json
    from gradleak.types import OBSERVATION_FORMAT

    out = safeio.ensure_dir(path)
    tensors: dict[str, Tensor] = {}
    for k, v in obs.model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    for name, u in zip(obs.param_names, obs.update, strict=True):
        tensors[f"update.{name}"] = u.detach().cpu().contiguous()
    if obs.labels is not None:
        tensors["labels"] = obs.labels.detach().cpu().contiguous()
    write_artifact(out / TENSORS, save(tensors))
    meta = {f.name: getattr(obs, f.name) for f in dataclasses.fields(obs)
            if f.name not in ("model", "update", "labels")}
    meta["normalization"] = (dataclasses.asdict(obs.normalization) if obs.normalization
                             else None)
    meta["param_names"] = list(obs.param_names)
    meta["data_shape"] = list(obs.data_shape)
    meta["format"] = OBSERVATION_FORMAT
    write_json(out / META, meta)
    return out


def _zoo_model(spec: dict[str, Any] | None, limits: Limits, source: Path) -> nn.Module:
    if not spec:
        raise DataError(
            "this observation's model is not from the zoo; pass model=YourModel() to load"
        )
    from gradleak.models import create, parameter_count
    from gradleak.models.registry import ModelTooLarge

    name, kwargs = spec["name"], dict(spec["kwargs"])
    try:
        parameter_count(name, max_parameters=limits.max_parameters,
                        max_modules=limits.max_modules, **kwargs)
        return create(name, **kwargs)
    except ModelTooLarge as exc:
        raise DataError(
            f"{source}: field 'model_spec' describes a model above the ceiling: {exc}. If you "
            "trust this file, load it with limits=gradleak.schema.Limits(max_parameters=N, "
            "max_modules=M)"
        ) from None
    except GradleakError as exc:
        raise DataError(f"{source}: field 'model_spec' is invalid: {exc}") from None
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(
            f"{source}: field 'model_spec' cannot build the model {name!r} ({exc})"
        ) from None


def _read_tensors(path: Path, limits: Limits) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    data = safeio.read_bytes(path, max_bytes=limits.max_file_bytes)
    try:
        return load(data)
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError) as exc:
        raise DataError(f"{path} is corrupt ({exc}); save the observation again") from exc


def _check_keys(tensors: dict[str, Tensor], model: nn.Module, names: list[str],
                path: Path) -> None:
    expected = {f"model.{k}" for k in model.state_dict()} | {f"update.{n}" for n in names}
    missing = sorted(expected - set(tensors))
    unknown = sorted(set(tensors) - expected - {"labels"})
    if missing:
        raise DataError(f"{path} lacks the tensor(s) {missing[:5]}; the file is incomplete or "
                        "does not belong to this meta.json")
    if unknown:
        raise DataError(f"{path} holds unexpected tensor(s) {unknown[:5]}; it was edited")


def read_observation(
    cls: type[Observation], src: Path, model: nn.Module | None, limits: Limits
) -> Observation:
    """Validates and loads the folder ``src`` (see the module docstring)."""
    from gradleak.losses import LOSSES
    from gradleak.types import OBSERVATION_FORMAT, Normalization

    meta_file, tensor_file = src / META, src / TENSORS
    if not meta_file.is_file() or not tensor_file.is_file():
        raise DataError(
            f"{src} is not a saved observation (needs {META} and {TENSORS}); "
            "create one with Observation.save()"
        )
    raw = safeio.read_json(meta_file)
    if not isinstance(raw, dict) or raw.get("format") != OBSERVATION_FORMAT:
        raise DataError(f"{meta_file} is not a gradleak observation ({OBSERVATION_FORMAT})")
    meta = check(observation_meta_schema(limits), raw, source=str(meta_file))
    check_observation_meta(meta, str(meta_file), limits)
    if meta["loss"] not in LOSSES:
        raise DataError(f"{meta_file}: field 'loss' names the unknown loss {meta['loss']!r}; "
                        f"known: {', '.join(LOSSES.available())}")
    if model is None:
        model = _zoo_model(meta["model_spec"], limits, meta_file)
    tensors = _read_tensors(tensor_file, limits)
    _check_keys(tensors, model, meta["param_names"], tensor_file)
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ObservationError(f"the saved weights do not fit the model you passed: {exc}") from exc
    norm = meta.pop("normalization")
    names = tuple(meta.pop("param_names"))
    meta.pop("format")
    return cls(
        model=model,
        update=tuple(tensors[f"update.{n}"] for n in names),
        param_names=names,
        labels=tensors.get("labels"),
        normalization=Normalization(tuple(norm["mean"]), tuple(norm["std"])) if norm else None,
        data_shape=tuple(meta.pop("data_shape")),
        **meta,
    )
