"""(gradient, image) training pairs, made on the fly from auxiliary images.

Learning to Invert (Wu et al., UAI 2023, Sec. 4) trains its inverter on pairs of a client
update and the batch that produced it, computed on the attacker's auxiliary data with the
target model. Here the pairs are never stored: every training step draws G groups of B
auxiliary images, computes the G batch gradients in one vectorised call
(``torch.func.vmap`` over ``torch.func.grad`` of a ``functional_call``), and applies the
client's defense to each group's update exactly as :func:`gradleak.simulate` does, so an
inverter can be trained *for* a defended deployment.

Each group's update is the gradient of the *mean* loss over its B images (what a FedSGD
client shares); BatchNorm layers use the group's own batch statistics, through the engine's
composite BatchNorm that never updates running statistics.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from gradleak.attacks.optimization.objective import replace_batchnorm
from gradleak.defenses import Defense
from gradleak.errors import ConfigError
from gradleak.losses import get_loss
from gradleak.types import Normalization, trainable_parameters

__all__ = ["PairMaker"]


class PairMaker:
    """Computes the (defended) FedSGD updates of groups of images for one target model.

    Args:
        model: the target model (copied; the original is not modified).
        defense: the client's defense, applied to every group's update, or None.
        loss: a registered loss name (:mod:`gradleak.losses`).
        normalization: the client's input normalisation, or None.
        train_mode: whether the client runs the model in training mode.

    Example:
        >>> import torch, gradleak as gl
        >>> maker = PairMaker(gl.models.create("lenet", in_shape=(1, 16, 16)))
        >>> upd = maker.updates(torch.rand(5, 2, 1, 16, 16), torch.zeros(5, 2, dtype=torch.long),
        ...                     generator=torch.Generator().manual_seed(0))
        >>> [tuple(u.shape) for u in upd][:2]
        [(5, 12, 1, 5, 5), (5, 12)]
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        defense: Defense | None = None,
        loss: str = "cross_entropy",
        normalization: Normalization | None = None,
        train_mode: bool = True,
    ) -> None:
        stage = getattr(defense, "stage", "update")
        if defense is not None and stage != "update":
            raise ConfigError(
                f"defense {defense.name!r} acts on the client's {stage}, not on its finished "
                "update; an inverter can be trained only for defenses applied to the update "
                "(noise, clip, prune, sign, ...)"
            )
        work = copy.deepcopy(model)
        work.train(train_mode)
        for p in work.parameters():
            p.requires_grad_(False)
        replace_batchnorm(work)
        self.model = work
        self.names = tuple(n for n, _ in trainable_parameters(model))
        named = dict(work.named_parameters())
        self.params = {n: named[n].detach() for n in self.names}
        self.defense = defense
        self.normalization = normalization
        loss_fn = get_loss(loss)

        def group_loss(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            inp = x if normalization is None else normalization.apply(x)
            return loss_fn(functional_call(self.model, params, (inp,), strict=False), y)

        self._grads = vmap(grad(group_loss), in_dims=(None, 0, 0))

    def updates(self, images: Tensor, labels: Tensor, *, generator: torch.Generator
                ) -> list[Tensor]:
        """The defended update of every group.

        Args:
            images: (G, B, C, H, W) groups of B images in [0, 1].
            labels: (G, B) class indices.
            generator: CPU generator of the defense's randomness.

        Returns:
            One tensor per trainable parameter, each (G, *parameter shape).
        """
        with torch.no_grad():
            g = self._grads(self.params, images, labels)
        update = [g[n].detach() for n in self.names]
        if self.defense is None:
            return update
        defended = [
            self.defense.apply([u[i] for u in update], generator=generator)
            for i in range(images.shape[0])
        ]
        return [torch.stack([d[k] for d in defended]) for k in range(len(update))]
