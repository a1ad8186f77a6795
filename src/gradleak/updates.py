"""What an observation's update says about the gradient: the one delta-to-gradient rule.

A FedSGD client shares the gradient of its mean loss. A FedAvg client shares the parameter
delta ``after - before`` of its local SGD steps (McMahan et al., 2017). One full-batch step
is exactly ``delta = -local_lr * gradient``; several steps (or mini-batches) are not a
multiple of one gradient, and ``-delta / (local_lr * local_steps)`` is only the mean
gradient along the way. Attacks and label strategies read gradients through here.
"""

from __future__ import annotations

from torch import Tensor

from gradleak.errors import ThreatModelError
from gradleak.types import Observation


def one_step_gradient_problem(obs: Observation) -> str | None:
    """None if ``obs`` holds a gradient or a one-step full-batch FedAvg delta, else why not."""
    if obs.kind == "gradient":
        return None
    if obs.local_steps != 1:
        return (
            f"a FedSGD gradient or a FedAvg delta of ONE local step (this delta has "
            f"{obs.local_steps} steps; closed-form attacks cannot undo several steps)"
        )
    if (
        obs.local_batch_size is not None
        and obs.batch_size is not None
        and obs.local_batch_size < obs.batch_size
    ):
        return "a FedAvg delta computed on the full batch (local_batch_size < batch_size)"
    if obs.local_lr == 0:
        return "a non-zero local learning rate to turn the FedAvg delta back into a gradient"
    return None


def gradient_from_update(
    obs: Observation, *, approximate_fedavg: bool = False
) -> tuple[dict[str, Tensor], bool]:
    """``({parameter name: gradient}, exact)`` of the client's mean training loss.

    Args:
        obs: the observation.
        approximate_fedavg: for a delta that is not one full-batch step, return
            ``-delta / (local_lr * local_steps)`` (the mean gradient along the local steps)
            with ``exact=False`` instead of raising.

    Raises:
        ThreatModelError: the update is not an exact multiple of one gradient and
            ``approximate_fedavg`` is False (the message says why), or the local learning
            rate is zero.
    """
    named = obs.named_update()
    if obs.kind == "gradient":
        return {k: v.detach() for k, v in named.items()}, True
    problem = one_step_gradient_problem(obs)
    if problem is None:
        return {k: -v.detach() / obs.local_lr for k, v in named.items()}, True
    if not approximate_fedavg or obs.local_lr == 0:
        raise ThreatModelError(f"this needs {problem}")
    scale = obs.local_lr * obs.local_steps
    return {k: -v.detach() / scale for k, v in named.items()}, False
