"""Group consistency prior (Yin et al., "See through Gradients", GradInversion, CVPR 2021).

GradInversion runs several optimisations ("agents", here the restarts R, which the engine runs
together) from different random seeds. Each tends to a slightly different, often shifted or
mirrored, version of the same batch. The group consistency term (Sec. 3.3, Eq. 7) pulls every
restart towards a *consensus*: the restarts are registered to a common frame, the consensus
``E`` is their pixel-wise mean, and each restart pays its l2 distance to ``E`` (mapped back
into its own frame)::

    R_group(x_r) = mean_b || x_{r,b} - T_{r,b}^{-1}( E_{pi_r(b)} ) ||_2

Registration here is by circular translation (up to ``max_shift`` pixels) and horizontal
flip, chosen per image to minimise the mean squared error to the reference; the paper uses a
learned/RANSAC-flow registration, of which this is the simple, differentiable-free
version. The consensus is recomputed every ``every`` iterations from the detached restarts
and kept in ``ctx.state["group"]``; between refreshes the penalty is a smooth function of
``x``. With a single restart the prior contributes 0.

Example:
    >>> import torch
    >>> from gradleak.priors import PriorContext
    >>> x0 = torch.rand(1, 2, 3, 8, 8)
    >>> x = torch.cat([x0, torch.roll(x0.flip(-1), 1, dims=-1)])   # restart 1: shifted mirror
    >>> GroupConsistencyPrior(start=0.0)(x, PriorContext(iterations=10)).abs().max() < 1e-6
    tensor(True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from gradleak.errors import ConfigError
from gradleak.priors.base import Prior, PriorContext, register_prior
from gradleak.types import Observation

__all__ = ["GroupConsistencyPrior", "Transform", "apply_transform", "group_targets"]


@dataclass(frozen=True)
class Transform:
    """A registration: optional horizontal flip, then a circular shift by (dy, dx)."""

    flip: bool
    dy: int
    dx: int


def apply_transform(img: Tensor, t: Transform, *, inverse: bool = False) -> Tensor:
    """Applies ``t`` (or its exact inverse) to images (..., H, W)."""
    if not inverse:
        out = img.flip(-1) if t.flip else img
        return torch.roll(out, shifts=(t.dy, t.dx), dims=(-2, -1))
    out = torch.roll(img, shifts=(-t.dy, -t.dx), dims=(-2, -1))
    return out.flip(-1) if t.flip else out


def _transforms(max_shift: int, flips: bool) -> list[Transform]:
    rng = range(-max_shift, max_shift + 1)
    mirror = (False, True) if flips else (False,)
    return [Transform(f, dy, dx) for f in mirror for dy in rng for dx in rng]


def _best_alignment(
    ref: Tensor, cand: Tensor, transforms: list[Transform]
) -> tuple[Tensor, Tensor]:
    """For every (reference b, candidate b') pair, the lowest MSE over transforms and its index.

    Args:
        ref: (B, C, H, W) reference images.
        cand: (B, C, H, W) candidate images.
        transforms: the registrations to try.

    Returns:
        ``(cost, which)``: (B, B) lowest MSE and (B, B) index into ``transforms``.
    """
    b = ref.shape[0]
    r = ref.reshape(b, -1)
    costs = []
    for t in transforms:
        c = apply_transform(cand, t).reshape(b, -1)
        costs.append(torch.cdist(r.double(), c.double()).pow(2) / r.shape[1])
    stack = torch.stack(costs)  # (T, B, B)
    cost, which = stack.min(dim=0)
    return cost, which


def _assign(cost: Tensor, groups: Tensor | None, match: bool) -> list[int]:
    """perm[b] = the candidate slot aligned to reference slot b."""
    b = cost.shape[0]
    if not match:
        return list(range(b))
    c = cost.detach().cpu().clone()  # a small (B, B) matrix; the solver runs on the CPU
    if groups is not None:
        groups = groups.cpu()
        same = groups[:, None] == groups[None, :]
        c = torch.where(same, c, torch.full_like(c, float("inf")))
    big = float(c[torch.isfinite(c)].max()) * 10 + 1 if torch.isfinite(c).any() else 1.0
    arr = torch.nan_to_num(c, posinf=big).numpy().astype(np.float64)
    rows, cols = linear_sum_assignment(arr)
    perm = [0] * b
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        perm[i] = j
    return perm


def group_targets(
    x: Tensor,
    *,
    max_shift: int = 2,
    flips: bool = True,
    match: bool = True,
    groups: Tensor | None = None,
    passes: int = 2,
) -> Tensor:
    """Per-restart targets: the consensus of the registered restarts, mapped back.

    Args:
        x: (R, B, C, H, W) restarts (detached).
        max_shift: largest circular shift (pixels) tried in registration.
        flips: also try horizontal mirroring.
        match: also permute slots within a restart (Hungarian assignment on the registered
            MSE), restricted to slots with equal ``groups`` values when given.
        groups: (B,) slot labels; only slots of equal label may be matched.
        passes: registration passes; the first registers to restart 0, later ones to the
            current consensus.

    Returns:
        (R, B, C, H, W) targets, ``targets[r]`` in restart ``r``'s own frame and slot order.
    """
    if x.dim() != 5:
        raise ConfigError("group_targets expects (R, B, C, H, W) restarts")
    n_restarts, batch = x.shape[:2]
    transforms = _transforms(max_shift, flips)
    reference = x[0]
    plans: list[tuple[list[int], list[Transform]]] = []
    for _ in range(max(1, passes)):
        plans = []
        aligned = []
        for r in range(n_restarts):
            cost, which = _best_alignment(reference, x[r], transforms)
            perm = _assign(cost, groups, match)
            ts = [transforms[int(which[b, perm[b]])] for b in range(batch)]
            plans.append((perm, ts))
            aligned.append(
                torch.stack([apply_transform(x[r, perm[b]], ts[b]) for b in range(batch)])
            )
        reference = torch.stack(aligned).mean(dim=0)
    targets = torch.empty_like(x)
    for r, (perm, ts) in enumerate(plans):
        for b in range(batch):
            targets[r, perm[b]] = apply_transform(reference[b], ts[b], inverse=True)
    return targets


@register_prior("group")
class GroupConsistencyPrior(Prior):
    """Pulls every restart towards the registered consensus of all restarts.

    Args:
        every: iterations between consensus refreshes.
        start: fraction of the iterations before the prior switches on (early restarts are
            noise, and so is their consensus).
        max_shift: largest circular shift (pixels) tried when registering.
        flips: also try horizontal mirroring.
        match: permute slots when registering (within equal labels when the labels are
            known from the observation; otherwise slots are kept in place).
        passes: registration passes per refresh (see :func:`group_targets`).
        squared: squared l2 distance instead of l2 distance.
    """

    def __init__(
        self,
        *,
        every: int = 100,
        start: float = 0.1,
        max_shift: int = 2,
        flips: bool = True,
        match: bool = True,
        passes: int = 2,
        squared: bool = False,
    ) -> None:
        if every < 1 or max_shift < 0 or passes < 1 or not 0.0 <= start <= 1.0:
            raise ConfigError(
                "prior 'group' needs every >= 1, max_shift >= 0, passes >= 1, 0 <= start <= 1"
            )
        self.every = int(every)
        self.start = float(start)
        self.max_shift = int(max_shift)
        self.flips = bool(flips)
        self.match = bool(match)
        self.passes = int(passes)
        self.squared = bool(squared)
        self._labels: Tensor | None = None

    def prepare(self, obs: Observation) -> None:
        """Remembers shared labels (slots of equal label may be matched across restarts)."""
        self._labels = None if obs.labels is None else obs.labels.detach().clone()

    def set_slot_labels(self, labels: Tensor | None) -> None:
        """Sets the dummy batch's labels (e.g. recovered ones): slots of equal label may be
        matched across restarts, others never."""
        self._labels = None if labels is None else labels.detach().cpu().clone()

    def _slot_labels(self, ctx: PriorContext, batch: int) -> Tensor | None:
        labels = ctx.state.get("labels", self._labels)
        if isinstance(labels, Tensor) and labels.dim() == 1 and len(labels) == batch:
            return labels.cpu()
        return None

    def __call__(self, x: Tensor, ctx: PriorContext) -> Tensor:
        """(R,) penalties for candidates ``x`` of shape (R, B, C, H, W)."""
        if x.dim() != 5:
            raise ConfigError("prior 'group' expects candidates of shape (R, B, C, H, W)")
        n_restarts = x.shape[0]
        if n_restarts < 2 or ctx.iteration < self.start * ctx.iterations:
            return x.new_zeros(n_restarts)
        state: dict[str, Any] = ctx.state.setdefault(self.name, {})
        targets = state.get("targets")
        stale = (
            not isinstance(targets, Tensor)
            or targets.shape != x.shape
            or ctx.iteration - int(state.get("at", -(10**9))) >= self.every
            or ctx.iteration < int(state.get("at", -1))
        )
        if stale:
            labels = self._slot_labels(ctx, x.shape[1])
            targets = group_targets(
                x.detach(),
                max_shift=self.max_shift,
                flips=self.flips,
                match=self.match and labels is not None,
                groups=labels,
                passes=self.passes,
            )
            state["targets"] = targets
            state["at"] = ctx.iteration
        assert isinstance(targets, Tensor)
        sq = (x - targets.to(x)).pow(2).flatten(2).sum(-1)  # (R, B)
        per_image = sq if self.squared else sq.clamp_min(1e-24).sqrt()
        return per_image.mean(dim=1)
