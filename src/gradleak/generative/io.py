"""Saving and loading generative priors: one safetensors file, never a pickle.

Format ``gradleak.generative/1``: a safetensors file whose tensors are the prior's
``state_dict`` (float32) and whose header metadata holds two strings: ``"format"`` and
``"gradleak"`` (the prior's JSON metadata: kind, latent_dim, image_size, channels,
value_range, architecture, data, train settings, command). One file is easy to share; the
header can be read without loading the weights.

A file received from someone else is untrusted: :func:`load` rebuilds the network from the
validated metadata (never from code in the file), requires exactly the expected tensor names
and shapes, finite float32 weights and every field within bounds, and raises
:class:`~gradleak.errors.DataError` naming what is wrong otherwise.
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gradleak.config import config_dict
from gradleak.errors import ConfigError, DataError
from gradleak.generative.arch import LIMITS, MAX_PARAMETERS, GeneratorSpec, build
from gradleak.generative.prior import GenerativePrior, check_outputs, wrap

FORMAT = "gradleak.generative/1"
#: the kinds whose network :func:`load` rebuilds from the metadata
BUILT_KINDS = ("dcgan", "vae")
#: largest prior file read (bytes): MAX_PARAMETERS float32 weights plus a header
MAX_FILE_BYTES = MAX_PARAMETERS * 4 + 1_000_000
_SUFFIX = ".safetensors"


def shipped_dir() -> Path:
    """The folder of the priors shipped with gradleak."""
    return Path(str(resources.files("gradleak.generative") / "shipped"))


def available() -> list[str]:
    """Names of the shipped priors, loadable with ``load(name)``.

    Example:
        >>> {"digits", "faces", "patches"} <= set(available())
        True
    """
    folder = shipped_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(_SUFFIX)] for p in folder.glob(f"*{_SUFFIX}"))


def architecture(prior: GenerativePrior) -> dict[str, Any] | None:
    """The architecture dict a built-in prior carries in its metadata (None for custom)."""
    arch = prior.metadata.get("architecture")
    return dict(arch) if isinstance(arch, dict) else None


def save(prior: GenerativePrior, path: str | Path) -> Path:
    """Writes ``prior`` to ``path`` (format ``gradleak.generative/1``, see the module doc).

    Args:
        prior: the prior to save.
        path: the file to write (``.safetensors`` is appended when missing; folders made).

    Returns:
        The path written.

    Raises:
        ConfigError: the metadata is not JSON-serialisable.
    """
    from safetensors.torch import save_file

    out = Path(path)
    if not out.name.endswith(_SUFFIX):
        out = out.with_name(out.name + _SUFFIX)
    try:
        meta = json.dumps(prior.metadata, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the prior's metadata is not JSON-serialisable ({exc})") from exc
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous()
               for k, v in prior.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "gradleak": meta})
    os.replace(tmp, out)
    return out


def _resolve(path_or_name: str | Path) -> Path:
    path = Path(path_or_name).expanduser()
    if path.is_file():
        return path
    if isinstance(path_or_name, str) and path_or_name in available():
        return shipped_dir() / f"{path_or_name}{_SUFFIX}"
    names = ", ".join(available()) or "none installed"
    raise DataError(
        f"no prior file {str(path)!r} and no shipped prior of that name (shipped: {names}); "
        "train one with `gradleak prior train` or give the path of a .safetensors prior"
    )


def read_header(path: Path) -> dict[str, Any]:
    """The validated JSON metadata of a prior file (weights are not read)."""
    from safetensors import SafetensorError, safe_open

    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(f"{path} is {size} bytes, more than any prior may be ({MAX_FILE_BYTES})")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable safetensors file ({exc}); re-download or "
                        "re-save it") from exc
    if header.get("format") != FORMAT or "gradleak" not in header:
        raise DataError(
            f"{path} is not a gradleak generative prior (format {header.get('format')!r}, "
            f"expected {FORMAT!r}); save priors with GenerativePrior.save"
        )
    try:
        meta = json.loads(header["gradleak"])
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} has corrupt JSON metadata ({exc}); re-save the prior") from exc
    if not isinstance(meta, dict):
        raise DataError(f"{path}: the metadata must be a JSON object, got {type(meta).__name__}")
    return meta


def _int_field(meta: dict[str, Any], name: str, path: Path) -> int:
    value = meta.get(name)
    lo, hi = LIMITS[name]
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise DataError(f"{path}: metadata {name}={value!r} is not an integer in [{lo}, {hi}]")
    return value


def _check_meta(meta: dict[str, Any], path: Path, kind: str | None) -> None:
    if meta.get("kind") not in (*BUILT_KINDS, "custom"):
        raise DataError(
            f"{path}: unknown prior kind {meta.get('kind')!r}; expected one of "
            f"{[*BUILT_KINDS, 'custom']}"
        )
    if kind is not None and meta["kind"] != kind:
        raise ConfigError(f"{path} holds a {meta['kind']!r} prior, not the {kind!r} asked for")
    for name in ("latent_dim", "image_size", "channels"):
        _int_field(meta, name, path)
    if meta.get("value_range") != [0.0, 1.0]:
        raise DataError(f"{path}: value_range {meta.get('value_range')!r} is not [0, 1]")


def _spec(meta: dict[str, Any], path: Path) -> GeneratorSpec:
    arch = meta.get("architecture")
    fields = ("latent_dim", "image_size", "channels", "width", "head", "norm")
    if not isinstance(arch, dict) or set(arch) != set(fields):
        raise DataError(f"{path}: metadata 'architecture' must hold exactly {list(fields)}")
    try:
        spec = GeneratorSpec(**arch)
    except (ConfigError, TypeError) as exc:
        raise DataError(f"{path}: invalid architecture ({exc})") from exc
    if spec.norm != "none" or any(arch[k] != meta[k] for k in fields[:3]):
        raise DataError(f"{path}: the architecture contradicts the metadata; re-save the prior")
    return spec


def _check_tensors(path: Path, module: nn.Module) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    expected = module.state_dict()
    count = sum(math.prod(v.shape) for v in expected.values())
    if count > MAX_PARAMETERS:
        raise DataError(f"{path}: {count} parameters exceed the limit of {MAX_PARAMETERS}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{path}: the weights cannot be read ({exc}); re-download it") from exc
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise DataError(
            f"{path}: tensors do not match the architecture in its metadata (missing "
            f"{missing[:5]}, unexpected {extra[:5]}); the file is corrupt or was edited"
        )
    for name, ref in expected.items():
        t = tensors[name]
        if t.shape != ref.shape or t.dtype != torch.float32:
            raise DataError(
                f"{path}: tensor {name!r} is {t.dtype} {tuple(t.shape)}, expected float32 "
                f"{tuple(ref.shape)}; the file is corrupt or was edited"
            )
        if not bool(torch.isfinite(t).all()):
            raise DataError(f"{path}: tensor {name!r} holds NaN or infinite values")
    return tensors


def load(
    path_or_name: str | Path,
    *,
    module: nn.Module | None = None,
    kind: str | None = None,
    device: str | torch.device = "cpu",
) -> GenerativePrior:
    """Loads a prior from a file, or a shipped prior by name (see :func:`available`).

    Never unpickles: the network is rebuilt from validated metadata and the weights are read
    with safetensors. A ``"custom"`` prior (saved from :func:`~gradleak.generative.wrap`)
    needs its architecture again: pass ``module=`` (same class as when it was wrapped).

    Args:
        path_or_name: a ``.safetensors`` prior file or a shipped prior's name.
        module: the user module of a custom prior.
        kind: refuse the file unless it holds this kind (``"dcgan"``, ``"vae"``, ``"custom"``).
        device: where to put the prior.

    Returns:
        The prior in eval mode.

    Raises:
        DataError: the file is missing, corrupt, edited, or out of bounds.
        ConfigError: it holds another kind than asked, or a custom prior lacks ``module=``.

    Example:
        >>> G = load("faces")
        >>> G.kind in ("dcgan", "vae"), G.image_size, G.channels
        (True, 32, 1)
    """
    path = _resolve(path_or_name)
    meta = read_header(path)
    _check_meta(meta, path, kind)
    if meta["kind"] == "custom":
        if module is None:
            raise ConfigError(
                f"{path} holds a custom prior; pass module= (the wrapped network's class, "
                "freshly built) to gradleak.generative.load"
            )
        prior = wrap(module, latent_dim=meta["latent_dim"], image_size=meta["image_size"],
                     channels=meta["channels"], metadata=meta)
    else:
        spec = _spec(meta, path)
        stem, blocks, head = build(spec)
        prior = GenerativePrior(stem, blocks, head, kind=meta["kind"], latent_dim=spec.latent_dim,
                                image_size=spec.image_size, channels=spec.channels, metadata=meta)
    tensors = _check_tensors(path, prior)
    prior.load_state_dict(tensors, strict=True)
    prior.to(device)
    check_outputs(prior)
    return prior


def spec_metadata(spec: GeneratorSpec) -> dict[str, Any]:
    """The ``architecture`` entry of a built-in prior's metadata."""
    return config_dict(spec)
