"""The gradient-matching objective for every restart in one batched computation.

For candidate inputs ``z`` of shape (R, B, C, H, W) (model input space) and training targets,
:class:`MatchingObjective` simulates the client's update for every restart and compares it
with the observed one:

* FedSGD (``obs.kind == "gradient"``): the gradient of the mean training loss w.r.t. the
  trainable parameters (Zhu et al., "Deep Leakage from Gradients", NeurIPS 2019, Eq. 4).
* FedAvg (``obs.kind == "delta"``): ``obs.local_steps`` differentiable SGD steps with
  ``obs.local_lr`` over mini-batches of ``obs.local_batch_size`` (cycled in order, as
  :func:`gradleak.simulate.client_update`), and the parameter delta ``after - before``
  (Geiping et al., "Inverting Gradients", NeurIPS 2020, Sec. 5).

The per-restart update is ``torch.func.grad`` of a ``functional_call`` of a private copy of
the model; ``torch.func.vmap`` runs all restarts as one batched computation and ordinary
autograd differentiates the result w.r.t. ``z`` (and soft labels). A single restart uses
plain ``torch.autograd.grad(..., create_graph=True)`` (less overhead).

The copy's BatchNorm layers are replaced by an equivalent composite module
(:class:`BatchNormFunction`): it never updates running statistics, it can report the
per-restart batch statistics of its input for priors, and it avoids a wrong result of
``vmap`` over the double backward of ``batch_norm`` in torch 2.x (``layer_norm`` and
``instance_norm`` have the same problem). Because user models may contain other such
layers, :meth:`MatchingObjective.check_vectorization` compares, once per run, the batched
gradient of two restarts with a per-restart loop and falls back to the loop on a mismatch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from gradleak.attacks.optimization.distances import (
    DISTANCES,
    GradientSpace,
    resolve_layer_weights,
)
from gradleak.losses import get_loss
from gradleak.priors.bn import batchnorm_layers
from gradleak.types import Observation

__all__ = ["BatchNormFunction", "MatchingObjective", "replace_batchnorm"]

BNStats = list[tuple[Tensor, Tensor]]


class BatchNormFunction(nn.Module):
    """A BatchNorm layer as plain tensor operations, with no running-statistics update.

    It normalises with the batch statistics when the original layer would (training mode,
    or no running statistics) and with the running statistics otherwise, exactly as
    ``nn.BatchNorm*d`` computes its output. When ``sink`` is a list, the per-channel batch
    mean and biased variance of the input are appended to it. With ``fused`` set it calls
    ``torch.nn.functional.batch_norm`` (faster; only outside ``vmap``).
    """

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        self.weight = bn.weight
        self.bias = bn.bias
        self.eps = float(bn.eps)
        self.use_batch_stats = bool(bn.training or bn.running_mean is None)
        if bn.running_mean is not None and bn.running_var is not None:
            self.register_buffer("running_mean", bn.running_mean.detach().clone())
            self.register_buffer("running_var", bn.running_var.detach().clone())
        else:
            self.running_mean = None
            self.running_var = None
        self.sink: list[tuple[Tensor, Tensor]] | None = None
        self.fused = False

    def forward(self, x: Tensor) -> Tensor:
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.fused:
            if self.sink is not None:
                mean = x.mean(dims)
                self.sink.append((mean, x.var(dims, unbiased=False)))
            return torch.nn.functional.batch_norm(
                x, None if self.use_batch_stats else self.running_mean,
                None if self.use_batch_stats else self.running_var, self.weight, self.bias,
                training=self.use_batch_stats, momentum=0.0, eps=self.eps)
        if self.use_batch_stats or self.sink is not None:
            mean = x.mean(dims, keepdim=True)
            centred = x - mean
            var = (centred * centred).mean(dims, keepdim=True)
            if self.sink is not None:
                self.sink.append((mean.reshape(-1), var.reshape(-1)))
        if self.use_batch_stats:
            y = centred * torch.rsqrt(var + self.eps)
        else:
            rm, rv = self.running_mean, self.running_var
            assert rm is not None and rv is not None
            y = (x - rm.view(shape)) * torch.rsqrt(rv.view(shape) + self.eps)
        if self.weight is not None:
            y = y * self.weight.view(shape)
        if self.bias is not None:
            y = y + self.bias.view(shape)
        return y


def replace_batchnorm(model: nn.Module) -> list[BatchNormFunction]:
    """Replaces every BatchNorm module of ``model`` in place; returns them in module order."""
    order = batchnorm_layers(model)
    swapped: dict[int, BatchNormFunction] = {}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                new = swapped.setdefault(id(child), BatchNormFunction(child))
                setattr(parent, name, new)
    return [swapped[id(m)] for m in order]


class MatchingObjective:
    """Simulated-vs-observed update distance for a batch of restarts.

    Args:
        obs: the observation (model, update, training metadata).
        distance: a name in ``DISTANCES``.
        layer_weights: a ``LAYER_WEIGHTS`` name or one weight per trainable tensor.
        bn_stats: also return the batch statistics of every BatchNorm input.
        batch_size: the client's batch size B.
        scale: factor on the distance (a recipe's ``grad_scale``).
        transform: the attacker's model of the client's defense, applied to the simulated
            updates (R, P) before the distance (adaptive attacks); None: the identity.

    Example:
        >>> objective = MatchingObjective(obs, distance="cosine", layer_weights="uniform",
        ...                               bn_stats=False, batch_size=1)  # doctest: +SKIP
        >>> match, _ = objective(z, labels)   # z (R, 1, C, H, W) -> (R,)  # doctest: +SKIP
    """

    def __init__(self, obs: Observation, *, distance: str,
                 layer_weights: str | Sequence[float], bn_stats: bool, batch_size: int,
                 scale: float = 1.0,
                 transform: Callable[[Tensor], Tensor] | None = None) -> None:
        model = copy.deepcopy(obs.model)
        model.train(obs.train_mode)
        for p in model.parameters():
            p.requires_grad_(False)
        self.bn_layers = replace_batchnorm(model)
        self.model = model
        self.names = tuple(obs.param_names)
        named = dict(model.named_parameters())
        self.params = {n: named[n].detach() for n in self.names}
        # leaves for the single-restart path, which uses plain autograd (less overhead)
        self.leaves = {n: p.clone().requires_grad_(True) for n, p in self.params.items()}
        weights = resolve_layer_weights(layer_weights, len(self.names))
        self.space = GradientSpace.build(obs.update, weights)
        self.distance = DISTANCES.get(distance)
        self.scale = float(scale)
        self.transform = transform
        self.loss_fn = get_loss(obs.loss)
        self.bn_stats = bool(bn_stats) and bool(self.bn_layers)
        self.kind = obs.kind
        self.local_steps = int(obs.local_steps)
        self.local_lr = float(obs.local_lr)
        bs = obs.local_batch_size or batch_size
        self.slices = [(s, s + bs) for s in range(0, batch_size, bs)]
        self._batched = vmap(self._trial, in_dims=(0, 0))
        self._batched_fixed = vmap(self._trial, in_dims=(0, None))
        #: whether vmap over restarts is exact for this model (None: not checked yet)
        self.vectorized: bool | None = None
        #: whether :meth:`evaluate` runs compiled code (set by the compilation module)
        self.compiled = False

    # ------------------------------------------------------------------ one restart
    def _loss(self, params: dict[str, Tensor], x: Tensor, targets: Tensor
              ) -> tuple[Tensor, tuple[tuple[Tensor, Tensor], ...]]:
        sink: list[tuple[Tensor, Tensor]] | None = [] if self.bn_stats else None
        for bn in self.bn_layers:
            bn.sink = sink
        try:
            out = functional_call(self.model, params, (x,), strict=False)
        finally:
            for bn in self.bn_layers:
                bn.sink = None
        return self.loss_fn(out, targets), tuple(sink or ())

    def _trial(self, z: Tensor, targets: Tensor
               ) -> tuple[Tensor, tuple[tuple[Tensor, Tensor], ...]]:
        """The flattened simulated update (P,) of one restart and its BN input statistics."""
        step_grad = grad(self._loss, has_aux=True)
        stats: tuple[tuple[Tensor, Tensor], ...] = ()
        if self.kind == "gradient":
            g, stats = step_grad(self.params, z, targets)
            return torch.cat([g[n].reshape(-1) for n in self.names]), stats
        params = self.params
        for step in range(self.local_steps):
            lo, hi = self.slices[step % len(self.slices)]
            g, step_stats = step_grad(params, z[lo:hi], targets[lo:hi])
            if step == 0:
                stats = step_stats
            params = {n: params[n] - self.local_lr * g[n] for n in self.names}
        delta = [(params[n] - self.params[n]).reshape(-1) for n in self.names]
        return torch.cat(delta), stats

    def _trial_autograd(self, z: Tensor, targets: Tensor, *, fused: bool = True
                        ) -> tuple[Tensor, tuple[tuple[Tensor, Tensor], ...]]:
        """:meth:`_trial` with ``torch.autograd.grad(create_graph=True)`` (one restart).

        ``fused`` computes BatchNorm with ``torch.nn.functional.batch_norm`` (faster);
        otherwise with the composite operations the batched path uses.
        """
        for bn in self.bn_layers:
            bn.fused = fused
        try:
            return self._autograd_update(z, targets)
        finally:
            for bn in self.bn_layers:
                bn.fused = False

    def _autograd_update(self, z: Tensor, targets: Tensor
                                ) -> tuple[Tensor, tuple[tuple[Tensor, Tensor], ...]]:
        leaves = list(self.leaves.values())
        stats: tuple[tuple[Tensor, Tensor], ...] = ()
        if self.kind == "gradient":
            loss, stats = self._loss(self.leaves, z, targets)
            g = torch.autograd.grad(loss, leaves, create_graph=True)
            return torch.cat([t.reshape(-1) for t in g]), stats
        params = self.leaves
        for step in range(self.local_steps):
            lo, hi = self.slices[step % len(self.slices)]
            loss, step_stats = self._loss(params, z[lo:hi], targets[lo:hi])
            g = torch.autograd.grad(loss, list(params.values()), create_graph=True)
            if step == 0:
                stats = step_stats
            params = {n: p - self.local_lr * gi for (n, p), gi in zip(params.items(), g,
                                                                        strict=True)}
        delta = [(params[n] - self.leaves[n]).reshape(-1) for n in self.names]
        return torch.cat(delta), stats

    # ------------------------------------------------------------------ all restarts
    def check_vectorization(self, z: Tensor, targets: Tensor, tol: float = 5e-5) -> bool:
        """Compares the batched and the per-restart gradient w.r.t. ``z`` for two restarts.

        Sets :attr:`vectorized`; when False, :meth:`simulate` loops over restarts. The
        tolerance (relative to the largest gradient entry) sits between float32 rounding
        (about 1e-6) and the errors of torch's faulty batching rules (about 1e-3). The
        per-restart reference computes BatchNorm with the same composite operations as the
        batched path: fused ``batch_norm`` differs from them in float32 by up to a few percent
        for some inputs (measured on IG's BN ConvNet at batch 2 and 8; both agree to 1e-15 in
        float64), which is rounding in an ill-conditioned computation, not a batching error.
        """
        if z.shape[0] < 2:
            self.vectorized = True
            return True
        shared = targets.dim() == 1
        zp = z[:2].detach().clone().requires_grad_(True)
        tp = targets.detach() if shared else targets[:2].detach()
        with torch.enable_grad():
            flat, _ = (self._batched_fixed if shared else self._batched)(zp, tp)
            (batched,) = torch.autograd.grad(self.distance(flat, self.space).sum(), zp)
            rows = []
            for r in range(2):
                zr = zp[r].detach().clone().requires_grad_(True)
                f, _ = self._trial_autograd(zr, tp if shared else tp[r], fused=False)
                rows.append(torch.autograd.grad(self.distance(f[None], self.space).sum(), zr)[0])
        looped = torch.stack(rows)
        err = (batched - looped).abs().max() / looped.abs().max().clamp_min(1e-30)
        self.vectorized = bool(torch.isfinite(err)) and float(err) <= tol
        return self.vectorized

    def simulate(self, z: Tensor, targets: Tensor) -> tuple[Tensor, BNStats]:
        """Simulated updates (R, P) for inputs ``z`` (R, B, C, H, W).

        Args:
            z: model inputs of every restart.
            targets: class indices (B,) shared by all restarts, or soft labels (R, B, K).

        Returns:
            ``(updates, bn_stats)`` with ``bn_stats`` one ``(mean, var)`` pair of (R, C_l)
            per BatchNorm layer (empty unless ``bn_stats``).
        """
        shared = targets.dim() == 1
        # one restart eagerly: plain autograd has less overhead than torch.func. Compiled code
        # always takes the torch.func path: torch.autograd.grad splits the compiled graph,
        # and torch 2.13 then returns distances disconnected from ``z``
        one = self._trial_autograd
        if z.shape[0] == 1 and not self.compiled:
            with torch.enable_grad():
                flat, stats = one(z[0], targets if shared else targets[0])
            return flat[None], [(m[None], v[None]) for m, v in stats]
        if self.vectorized is False:  # exact fallback: one restart after the other
            with torch.enable_grad():
                runs = [one(z[r], targets if shared else targets[r])
                        for r in range(z.shape[0])]
            flat = torch.stack([f for f, _ in runs])
            layers = zip(*[st for _, st in runs], strict=True)
            return flat, [(torch.stack([m for m, _ in lay]), torch.stack([v for _, v in lay]))
                          for lay in layers]
        fn = self._batched_fixed if shared else self._batched
        flat, stats = fn(z, targets)
        return flat, list(stats)

    def evaluate(self, z: Tensor, targets: Tensor) -> tuple[Tensor, BNStats]:
        """Per-restart distance (R,) between simulated and observed updates, and BN stats."""
        sim, stats = self.simulate(z, targets)
        if self.transform is not None:
            sim = self.transform(sim)
        dist = self.distance(sim, self.space)
        return (dist if self.scale == 1.0 else self.scale * dist), stats

    def __call__(self, z: Tensor, targets: Tensor) -> tuple[Tensor, BNStats]:
        """:meth:`evaluate` (an instance may hold a compiled version of it)."""
        return self.evaluate(z, targets)
