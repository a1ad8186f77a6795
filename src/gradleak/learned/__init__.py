"""Learned inversion: networks trained to map a model's gradients to images.

Wu, Chen, Guo & Weinberger, "Learning to Invert: Simple Adaptive Attacks for Gradient
Inversion in Federated Learning", UAI 2023. :func:`train` fits an :class:`Inverter` for one
target model (and the client's batch size and defense) on (gradient, image) pairs made on the
fly from auxiliary images; ``gl.reconstruct(obs, attack="lti", inverter=inv)`` applies it.

Example:
    >>> import torch, gradleak as gl
    >>> model = gl.models.create("lenet", in_shape=(1, 8, 8))
    >>> inv = gl.learned.train(model, torch.rand(40, 1, 8, 8), hidden=32, epochs=1)
    >>> inv.batch_size, inv.image_shape
    (1, (1, 8, 8))
"""

from gradleak.learned.hashing import FeatureHash
from gradleak.learned.heads import HEADS, HeadSettings, Layout
from gradleak.learned.inverter import Inverter, load
from gradleak.learned.matching import hungarian_mse, pairwise_group_mse
from gradleak.learned.pairs import PairMaker
from gradleak.learned.training import EpochReport, TrainSettings, train
from gradleak.learned.units import UnitsHead

__all__ = [
    "HEADS",
    "EpochReport",
    "FeatureHash",
    "HeadSettings",
    "Inverter",
    "Layout",
    "PairMaker",
    "TrainSettings",
    "UnitsHead",
    "hungarian_mse",
    "load",
    "pairwise_group_mse",
    "train",
]
