"""``lti``: Learning to Invert (Wu, Chen, Guo & Weinberger, UAI 2023).

A network trained on (gradient, image) pairs of the target model maps the observed gradient
to the client's images in one forward pass. Train the inverter with
:func:`gradleak.learned.train` (or ``gradleak learn train``) for the model, parameters, batch
size and defense of the deployment, then::

    rec = gl.reconstruct(obs, attack="lti", inverter=inv)

The attack refuses an inverter trained for another model, other parameters, batch size,
defense, loss, normalisation or image shape (:meth:`~gradleak.learned.Inverter.check`).
Labels are returned only when the client shares them (the inverter predicts images only).

Not implemented: refining the inverter's output with the optimisation engine (the paper's
optional second stage) — the engine cannot yet start from given images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import torch

from gradleak.attacks.base import Attack, Callback, Progress, register_attack
from gradleak.errors import ConfigError
from gradleak.types import Observation, Reconstruction, Trace

__all__ = ["LTI", "LTIConfig"]


@dataclass(frozen=True)
class LTIConfig:
    """``lti`` has no tunable setting: everything is fixed by the trained inverter."""


@register_attack("lti")
class LTI(Attack):
    """Learning to Invert: one forward pass of a trained inverter (Wu et al., UAI 2023).

    Example:
        >>> import torch, gradleak as gl
        >>> model = gl.models.create("lenet", in_shape=(1, 8, 8))
        >>> inv = gl.learned.train(model, torch.rand(40, 1, 8, 8), hidden=32, epochs=1)
        >>> obs, truth = gl.simulate(model, torch.rand(1, 1, 8, 8), torch.tensor([3]))
        >>> gl.reconstruct(obs, attack="lti", inverter=inv).images.shape
        torch.Size([1, 1, 8, 8])
    """

    Config: ClassVar[type] = LTIConfig
    requires: ClassVar[frozenset[str]] = frozenset({"gradient", "batch_size"})
    accepts: ClassVar[frozenset[str]] = frozenset({"inverter"})

    def reconstruct(
        self,
        obs: Observation,
        *,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Reconstruction:
        """Inverts ``obs``'s gradient with the inverter given as ``inverter=``.

        Raises:
            ConfigError: no inverter was given.
            ThreatModelError: the inverter was trained for another setting.
        """
        from gradleak.learned import Inverter

        inv = self.objects.get("inverter")
        if not isinstance(inv, Inverter):
            raise ConfigError(
                "attack 'lti' needs a trained inverter: gl.reconstruct(obs, attack='lti', "
                "inverter=gl.learned.load(path, model=obs.model)) or gl.learned.train(...)"
            )
        self.check(obs)
        inv.check(obs)
        t0 = time.perf_counter()
        images = inv.invert(obs.update)
        elapsed = time.perf_counter() - t0
        if callback is not None:
            callback(Progress(iteration=1, total=1, loss=float("nan")))
        return Reconstruction(
            images=images,
            labels=None if obs.labels is None else obs.labels.detach().cpu().clone(),
            attack=self.name,
            config={**self.config_dict(), "inverter": repr(inv)},
            trace=Trace(wall_time=elapsed),
            extras={"head": inv.spec.head, "inference_ms": 1000.0 * elapsed,
                    "labels_source": "given" if obs.labels is not None else None},
        )
