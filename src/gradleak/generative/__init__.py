"""Generative priors: latent -> image networks that gradient inversion attacks search.

Train a prior on public images of the client's domain, share it as one safetensors file, load
it (never unpickled), or wrap any latent -> image module of your own. The attacks ``gias``,
``ggl`` and ``gifd`` take one as ``generative_prior=``.

Shipped priors (:func:`available`), one per offline domain of :mod:`gradleak.data.domains`,
trained on its ``train`` split only by ``scripts/build_priors.py`` (the exact command is in
each prior's ``metadata["command"]``): ``digits``, ``faces``, ``patches`` (32x32).

Example:
    >>> import torch, gradleak as gl
    >>> G = gl.generative.load("digits")
    >>> images = G(G.sample_latent(4, torch.Generator().manual_seed(0)))
    >>> tuple(images.shape), float(images.min()) >= 0.0, float(images.max()) <= 1.0
    ((4, 1, 32, 32), True, True)
"""

from gradleak.generative.io import available, load, save
from gradleak.generative.kinds import KINDS, Kind, register_kind
from gradleak.generative.prior import GenerativePrior, wrap
from gradleak.generative.projection import Projection, project
from gradleak.generative.training import TrainConfig, TrainStatus, train

__all__ = [
    "KINDS",
    "GenerativePrior",
    "Kind",
    "Projection",
    "TrainConfig",
    "TrainStatus",
    "available",
    "load",
    "project",
    "register_kind",
    "save",
    "train",
    "wrap",
]
