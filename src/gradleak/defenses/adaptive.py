"""Adaptive attacks: surrogates of the declared defense, applied to an attacker's candidates.

An adaptive attacker (GGL: Li et al., "Auditing Privacy Defenses in Federated Learning via
Generative Gradient Leakage", CVPR 2022, Sec. 4.3) transforms the gradient of its candidate
batch the way the client's defense transformed the real one before matching. A
:class:`Surrogate` maps a batch of R flattened simulated updates (R, P) -- the parameter
tensors concatenated in ``obs.param_names`` order, ``sizes`` their numels -- to what the
defense would produce, differentiably or with a straight-through estimator (Bengio et al.,
2013), so gradients still reach the candidate:

=========  ==============================================================================
clip       norm clipping at ``max_norm`` (differentiable; GGL clips the trial gradient)
prune      the candidate's own top-k keep-mask by magnitude, same ratio (GGL's compression)
sparsify   the observed nonzero pattern (the random mask is visible in the update)
sign       sign, straight-through
quantize   ``rounding="nearest"``: nearest rounding on the defense's grid, straight-through;
           ``"stochastic"`` (the default): its expectation, the identity (unbiased rounding
           on a grid spanning each tensor's range; rounding the candidate to the nearest
           level instead is a different quantiser and measurably worse than no surrogate)
noise      identity (zero-mean noise; GGL leaves it out)
laplace    identity
dpsgd      the expected update: clipping at C (exact for one sample per step; for larger
           batches per-sample clipping would need per-sample gradients, so the aggregate is
           clipped) -- for a FedAvg delta at ``local_lr * C * local_steps``
soteria    the observed zero columns of the defended layer's weight gradient (GGL)
=========  ==============================================================================

The forward value of every deterministic defense's surrogate equals the defense's output on
the same update; for the random ones (noise, stochastic rounding) it is its expectation.
Data, model and aggregation defenses have no surrogate (None): an attack faces them through
the observation itself.

Example:
    >>> import torch
    >>> from gradleak.defenses.adaptive import build_surrogate
    >>> s = build_surrogate("clip(max_norm=1.0)")
    >>> float(s(torch.full((1, 4), 3.0), [4]).norm())
    1.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from gradleak.defenses import functional as F
from gradleak.defenses.base import Defense
from gradleak.defenses.spec import DefenseSpec, resolve
from gradleak.errors import ThreatModelError
from gradleak.registry import Registry

if TYPE_CHECKING:
    from gradleak.types import Observation


class Surrogate:
    """``surrogate(flat (R, P), sizes) -> (R, P)``: what the defense makes of each row.

    Attributes:
        name: the defense's registered name.
        description: a short text of what the surrogate computes.
    """

    def __init__(self, name: str, fn: Callable[[Tensor, Sequence[int]], Tensor],
                 description: str) -> None:
        self.name = name
        self.description = description
        self._fn = fn

    def __call__(self, flat: Tensor, sizes: Sequence[int]) -> Tensor:
        if flat.dim() != 2 or sum(int(s) for s in sizes) != flat.shape[1]:
            raise ThreatModelError(
                f"surrogate {self.name!r}: expected (R, {sum(int(s) for s in sizes)}) "
                f"flattened updates, got {tuple(flat.shape)}"
            )
        return self._fn(flat, sizes)

    def __repr__(self) -> str:
        return f"Surrogate({self.name!r}: {self.description})"


class _SignSTE(torch.autograd.Function):
    """sign(x) forward, identity backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        return torch.sign(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad


class _ValueSTE(torch.autograd.Function):
    """Forward: a given value; backward: identity to ``x``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, value: Tensor) -> Tensor:  # type: ignore[override]
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad, None


SurrogateFactory = Callable[[Defense, "Observation | None"], Surrogate | None]
SURROGATES: Registry[SurrogateFactory] = Registry("surrogate")


def _identity(name: str) -> SurrogateFactory:
    def build(defense: Defense, obs: Observation | None) -> Surrogate:
        return Surrogate(name, lambda flat, sizes: flat, "identity (zero-mean noise)")

    return build


SURROGATES.register("noise")(_identity("noise"))
SURROGATES.register("laplace")(_identity("laplace"))


@SURROGATES.register("clip")
def _clip(defense: Defense, obs: Observation | None) -> Surrogate:
    c = float(defense.max_norm)  # type: ignore[attr-defined]
    return Surrogate("clip", lambda flat, sizes: F.clip_rows(flat, c), f"clip at {c:g}")


@SURROGATES.register("prune")
def _prune(defense: Defense, obs: Observation | None) -> Surrogate:
    ratio = float(defense.ratio)  # type: ignore[attr-defined]
    return Surrogate(
        "prune", lambda flat, sizes: flat * F.topk_keep_mask(flat, sizes, ratio),
        f"own top-k mask, ratio {ratio:g}",
    )


def observed_flat(obs: Observation) -> Tensor:
    """The observation's update as one (1, P) row."""
    return F.flatten(list(obs.update))[0]


@SURROGATES.register("sparsify")
def _sparsify(defense: Defense, obs: Observation | None) -> Surrogate:
    if obs is None:
        raise ThreatModelError("the 'sparsify' surrogate reads the observed nonzero pattern; "
                               "call build_surrogate(obs.defense, observation=obs)")
    row = observed_flat(obs)
    mask = (row != 0).to(row.dtype)
    if getattr(defense, "rescale", False):
        ratio = float(defense.ratio)  # type: ignore[attr-defined]
        sizes = [u.numel() for u in obs.update]
        mask = mask * torch.cat([torch.full((n,), n / max(n - F.drop_count(n, ratio), 1),
                                            dtype=row.dtype) for n in sizes])

    def fn(flat: Tensor, sizes: Sequence[int]) -> Tensor:
        return flat * mask.to(flat.device, flat.dtype)

    return Surrogate("sparsify", fn, "observed nonzero pattern")


@SURROGATES.register("sign")
def _sign(defense: Defense, obs: Observation | None) -> Surrogate:
    return Surrogate("sign", lambda flat, sizes: _SignSTE.apply(flat), "straight-through sign")


@SURROGATES.register("quantize")
def _quantize(defense: Defense, obs: Observation | None) -> Surrogate:
    bits = int(defense.bits)  # type: ignore[attr-defined]
    if defense.rounding == "stochastic":  # type: ignore[attr-defined]
        return Surrogate("quantize", lambda flat, sizes: flat,
                         f"expectation of unbiased stochastic rounding ({bits} bits): identity")

    def fn(flat: Tensor, sizes: Sequence[int]) -> Tensor:
        return _ValueSTE.apply(flat, F.quantize_nearest(flat, sizes, bits))  # type: ignore[no-any-return]

    return Surrogate("quantize", fn, f"straight-through nearest rounding, {bits} bits")


@SURROGATES.register("dpsgd")
def _dpsgd(defense: Defense, obs: Observation | None) -> Surrogate:
    c = float(defense.max_grad_norm)  # type: ignore[attr-defined]
    if obs is not None and obs.kind == "delta":
        c = c * float(obs.local_lr) * int(obs.local_steps)
    return Surrogate("dpsgd", lambda flat, sizes: F.clip_rows(flat, c),
                     f"expected clipped update (clip at {c:g})")


@SURROGATES.register("soteria")
def _soteria(defense: Defense, obs: Observation | None) -> Surrogate:
    if obs is None:
        raise ThreatModelError("the 'soteria' surrogate reads the observed pruned columns; "
                               "call build_surrogate(obs.defense, observation=obs)")
    from gradleak.defenses.soteria import defended_layer

    layer, _ = defended_layer(obs.model, defense.layer)  # type: ignore[attr-defined]
    mask = torch.ones_like(observed_flat(obs))
    start = 0
    for name, u in zip(obs.param_names, obs.update, strict=True):
        if name == f"{layer}.weight":
            kept = (u.reshape(u.shape[0], -1) != 0).any(dim=0).to(mask.dtype)
            mask[0, start:start + u.numel()] = kept.unsqueeze(0).expand(u.shape[0], -1
                                                                        ).reshape(-1)
        start += u.numel()

    def fn(flat: Tensor, sizes: Sequence[int]) -> Tensor:
        return flat * mask.to(flat.device, flat.dtype)

    return Surrogate("soteria", fn, f"observed pruned columns of {layer}.weight")


def build_surrogate(defense_spec: DefenseSpec, observation: Observation | None = None
                    ) -> Surrogate | None:
    """The surrogate of the declared defense, or None when it has none (or no defense).

    Args:
        defense_spec: the observation's declared defense (``obs.defense``, a description such
            as ``"prune(ratio=0.9)"``), a dict spec or a :class:`Defense`.
        observation: the observation; needed by surrogates that read the observed update
            (``sparsify``, ``soteria``) and used by ``dpsgd`` for FedAvg deltas.

    Returns:
        A :class:`Surrogate`, or None for defenses without one (data, model, aggregation).
    """
    defense = resolve(defense_spec)
    if defense is None or defense.name not in SURROGATES:
        return None
    return SURROGATES.get(defense.name)(defense, observation)


def available() -> list[str]:
    """Defenses that have a surrogate."""
    return SURROGATES.available()
