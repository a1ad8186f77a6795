"""``lti``: Learning to Invert (Wu, Chen, Guo & Weinberger, UAI 2023).

A network trained on (gradient, image) pairs of the target model maps the observed gradient
to the client's images in one forward pass. Train the inverter with
:func:`gradleak.learned.train` (or ``gradleak learn train``) for the model, parameters, batch
size and defense of the deployment, then::

    rec = gl.reconstruct(obs, attack="lti", inverter=inv)

The attack refuses an inverter trained for another model, other parameters, batch size,
defense, loss, normalisation or image shape (:meth:`~gradleak.learned.Inverter.check`).
Labels are returned when the client shares them or when the inverter needs them: a
``units`` inverter (:mod:`gradleak.learned.units`) decodes one image per label, so the attack
recovers the labels first (``label_strategy``, iLRG by default) and returns them with the
images in their order; a strategy that fails on the update raises an ``ObservationError``.

With ``refine_iterations > 0`` the inverter's output is refined by gradient matching: the
``refine_attack`` recipe (``ig`` by default) starts every restart from it
(:meth:`~gradleak.attacks.optimization.OptimizationAttack.reconstruct_from`) and runs that many
iterations; its restart with the lowest matching distance is returned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from gradleak.attacks.base import Attack, Callback, Progress, register_attack
from gradleak.errors import ConfigError, ObservationError, ThreatModelError
from gradleak.types import Observation, Reconstruction, Trace

__all__ = ["LTI", "LTIConfig"]


@dataclass(frozen=True)
class LTIConfig:
    """The inverter fixes the forward pass; these settings only control refinement.

    Attributes:
        inverter: the trained inverter: an :class:`~gradleak.learned.Inverter` or the path
            of one saved with ``Inverter.save`` (loaded with :func:`gradleak.learned.load`
            against the observation's model, so a checkpoint for another model, parameters,
            batch size or defense is refused).
        refine_iterations: gradient-matching iterations started from the inverter's output
            (0: the inverter's output as it is).
        refine_attack: the optimisation recipe that refines (any of them, e.g. ``ig``).
        refine_restarts: its restarts (all start from the inverter's output).
        label_strategy: how labels are recovered for an inverter that needs them (the
            ``units`` head) when the client does not share them (``gl.recover_labels``).
    """

    inverter: Any = None
    refine_iterations: int = 0
    refine_attack: str = "ig"
    refine_restarts: int = 1
    label_strategy: str = "ilrg"

    def __post_init__(self) -> None:
        from gradleak.attacks.optimization.config import check_int

        check_int("refine_iterations", self.refine_iterations, 0)
        check_int("refine_restarts", self.refine_restarts, 1)


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

    def config_dict(self) -> dict[str, Any]:
        """The config with the inverter described (its path, or what it was trained for)."""
        out = super().config_dict()
        inv = self.config.inverter
        if inv is not None:
            out["inverter"] = str(inv) if isinstance(inv, str | Path) else repr(inv)
        return out

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

        inv = self.config.inverter
        if isinstance(inv, str | Path):
            from gradleak.learned import load

            inv = load(inv, model=obs.model)
        if not isinstance(inv, Inverter):
            raise ConfigError(
                "attack 'lti' needs a trained inverter: gl.reconstruct(obs, attack='lti', "
                "inverter=gl.learned.train(...)) or inverter='path/to/inverter.safetensors'"
            )
        self.check(obs)
        inv.check(obs)
        t0 = time.perf_counter()
        labels, source = obs.labels, "given" if obs.labels is not None else None
        if inv.needs_labels and labels is None:
            from gradleak.labels import recover_labels

            source = self.config.label_strategy
            try:
                labels = recover_labels(obs, strategy=source)
            except (ThreatModelError, RuntimeError) as exc:  # e.g. a heavily pruned update
                raise ObservationError(
                    f"this inverter needs the batch's labels and label strategy {source!r} "
                    f"could not recover them from this update ({exc}); share the labels, pick "
                    "another label_strategy, or use an inverter with head 'mlp' or 'rows'"
                ) from exc
        images = inv.invert(obs.update, labels)
        elapsed = time.perf_counter() - t0
        if callback is not None:
            callback(Progress(iteration=1, total=1, loss=float("nan")))
        if self.config.refine_iterations:
            return self._refine(obs, images, elapsed, generator, callback)
        return Reconstruction(
            images=images,
            labels=None if labels is None else labels.detach().cpu().clone(),
            attack=self.name,
            config=self.config_dict(),
            trace=Trace(wall_time=elapsed),
            extras={"head": inv.spec.head, "inverter": repr(inv),
                    "inference_ms": 1000.0 * elapsed, "labels_source": source},
        )

    def _refine(self, obs: Observation, images: torch.Tensor, elapsed: float,
                generator: torch.Generator | None, callback: Callback | None) -> Reconstruction:
        """Gradient matching started from the inverter's output (``refine_*`` settings)."""
        from gradleak.attacks.base import create
        from gradleak.attacks.optimization import OptimizationAttack

        cfg = self.config
        refiner = create(cfg.refine_attack, iterations=cfg.refine_iterations,
                         restarts=cfg.refine_restarts)
        if not isinstance(refiner, OptimizationAttack):
            raise ConfigError(f"refine_attack must be an optimisation recipe (ig, dlg, ...), "
                              f"not {cfg.refine_attack!r}")
        rec = refiner.reconstruct_from(obs, images, generator=generator, callback=callback)
        rec.trace.wall_time += elapsed
        return Reconstruction(
            images=rec.images, labels=rec.labels, attack=self.name,
            config={**self.config_dict(), "refiner": rec.config}, trace=rec.trace,
            extras={**rec.extras, "inference_ms": 1000.0 * elapsed, "inverter_images": images},
        )
