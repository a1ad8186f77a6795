"""The points of ``defense-curves``: one defense setting per (axis, value)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradleak.experiments.defense_curves.settings import Settings


@dataclass(frozen=True)
class Point:
    """One defense setting.

    Attributes:
        axis: ``none``, ``noise``, ``dp``, ``prune``, ``quantize``, ``sign`` or ``batch``.
        value: the axis value (sigma, target epsilon, ratio, bits, 1 for sign, batch size).
        defense: the defense spec (None: no defense).
        batch: the client's batch size.
    """

    axis: str
    value: float
    defense: dict[str, Any] | None
    batch: int = 1
    name: str | None = None

    @property
    def label(self) -> str:
        """A short name, e.g. ``prune 0.9``."""
        if self.name is not None:
            return self.name
        if self.axis in ("none", "sign"):
            return {"none": "no defense", "sign": "sign"}[self.axis]
        return f"{self.axis} {self.value:g}"


def dp_spec(s: Settings, epsilon: float, sample_rate: float, steps: int) -> dict[str, Any]:
    """DP-SGD at the noise multiplier Opacus finds for ``epsilon`` over the utility training."""
    return {"name": "dpsgd", "target_epsilon": float(epsilon),
            "max_grad_norm": s.dp_max_grad_norm, "delta": s.dp_delta,
            "sample_rate": float(sample_rate), "steps": int(steps)}


def dp_sigma_spec(s: Settings, sigma: float, sample_rate: float, steps: int
                  ) -> dict[str, Any]:
    """DP-SGD at a given noise multiplier (epsilon reported by Opacus' RDP accountant)."""
    return {"name": "dpsgd", "noise_multiplier": float(sigma),
            "max_grad_norm": s.dp_max_grad_norm, "delta": s.dp_delta,
            "sample_rate": float(sample_rate), "steps": int(steps), "accountant": "rdp"}


def points(s: Settings, sample_rate: float, steps: int) -> list[Point]:
    """Every point of the study: the undefended baseline first, then each axis in order.

    ``sample_rate`` and ``steps`` describe the simulated training (the utility run's batch
    fraction and rounds) that DP-SGD's epsilon is accounted over.
    """
    out = [Point("none", 0.0, None)]
    per_axis: dict[str, list[Point]] = {
        "noise": [Point("noise", v, {"name": "noise", "sigma": v}) for v in s.noise_sigmas],
        "dp": [Point("dp", v, dp_spec(s, v, sample_rate, steps), name=f"dp eps {v:g}")
               for v in s.dp_epsilons]
        + [Point("dp", v, dp_sigma_spec(s, v, sample_rate, steps), name=f"dp sigma {v:g}")
           for v in s.dp_noise_multipliers],
        "prune": [Point("prune", v, {"name": "prune", "ratio": v}) for v in s.prune_ratios],
        "quantize": [Point("quantize", v, {"name": "quantize", "bits": int(v)})
                     for v in s.quant_bits],
        "sign": [Point("sign", 1.0, {"name": "sign"})],
        "batch": [Point("batch", b, None, batch=int(b)) for b in s.batch_sizes if b != 1],
    }
    for axis in s.axes:
        out.extend(per_axis[axis])
    return out


def runs_on(s: Settings, attack: str, point: Point) -> bool:
    """Whether ``attack`` runs on ``point`` (``attack_points``: axes or point labels)."""
    where = s.attack_points.get(attack)
    return where is None or point.axis in where or point.label in where
