"""The ``generative_prior`` setting of the generative recipes: resolve it, check that it fits.

A recipe's ``generative_prior`` is a :class:`~gradleak.generative.GenerativePrior` (or any
module wrapped with :func:`gradleak.generative.wrap`), the name of a prior shipped with
gradleak (``gl.generative.available()``) or the path of a saved prior. It must produce
images of the observation's shape (channels, height, width) in [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from gradleak.errors import ConfigError, ThreatModelError
from gradleak.types import Observation

__all__ = ["check_fit", "describe_prior", "resolve_prior"]

_NEEDED = ("latent_dim", "image_size", "channels", "sample_latent", "num_stages")


def resolve_prior(value: Any, attack: str) -> nn.Module:
    """The prior object for a recipe's ``generative_prior`` setting.

    Raises:
        ThreatModelError: no prior was given.
        ConfigError: the value is neither a prior, a shipped name nor a readable file.
    """
    if value is None:
        raise ThreatModelError(
            f"attack {attack!r} needs a generative prior of the client's image domain: pass "
            "generative_prior= a shipped name (gl.generative.available()), a file written by "
            "prior.save / `gradleak prior train`, or gl.generative.wrap(your_generator)"
        )
    if isinstance(value, str | Path):
        from gradleak import generative

        return generative.load(value)
    if isinstance(value, nn.Module) and all(hasattr(value, a) for a in _NEEDED):
        return value
    raise ConfigError(
        f"attack {attack!r}: generative_prior must be a GenerativePrior, a shipped prior's "
        f"name or a path, got {type(value).__name__}; wrap a plain generator with "
        "gl.generative.wrap(module, latent_dim=..., image_size=..., channels=...)"
    )


def check_fit(prior: nn.Module, obs: Observation, attack: str) -> None:
    """Raises :class:`ConfigError` unless the prior's images have the observation's shape."""
    c, h, w = obs.data_shape
    size, channels = int(prior.image_size), int(prior.channels)  # type: ignore[arg-type]
    if (channels, size, size) != (c, h, w):
        raise ConfigError(
            f"attack {attack!r}: the generative prior makes {channels}x{size}x{size} images "
            f"but the client's images are {c}x{h}x{w}; train a prior for this domain "
            f"(gl.generative.train(images, image_size={h}) or `gradleak prior train --size "
            f"{h}`) with {c} channel(s)"
        )


def describe_prior(value: Any) -> Any:
    """A JSON-friendly record of a ``generative_prior`` setting (for the run's config)."""
    if value is None or isinstance(value, str | Path):
        return None if value is None else str(value)
    meta = getattr(value, "metadata", None)
    if isinstance(meta, dict):
        keep = ("name", "kind", "latent_dim", "image_size", "channels", "data")
        return {k: meta[k] for k in keep if k in meta}
    return type(value).__name__
