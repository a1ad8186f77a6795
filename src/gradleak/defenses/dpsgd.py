"""DP-SGD in the client's training, through Opacus.

Abadi et al., "Deep Learning with Differential Privacy", CCS 2016: every per-sample gradient
is clipped to l2 norm ``max_grad_norm`` (C), the clipped gradients are summed, Gaussian noise
N(0, (sigma C)^2) is added and the sum is divided by the expected batch size. The per-sample
gradients, the clipping and the noise are Opacus' (``GradSampleModule`` and ``DPOptimizer``;
Yousefpour et al., 2021), and the (epsilon, delta) guarantee is the one Opacus' accountant
reports for ``steps`` steps at ``sample_rate`` -- never recomputed here.

FedSGD: the client shares the privatised gradient of its batch (one DP-SGD step, before the
optimiser moves the weights). FedAvg (``local_steps`` > 1 or a ``local_batch_size``): the
client takes that many DP-SGD steps with SGD at ``local_lr`` and shares the delta.

Models that Opacus cannot train per sample (BatchNorm) are replaced the Opacus way
(``ModuleValidator.fix``: BatchNorm -> GroupNorm); the federation then trains the fixed model,
which is what the observation holds, and ``defense_report["opacus_fixed"]`` lists the layers.
"""

from __future__ import annotations

import copy
import functools
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gradleak.defenses.base import (
    ClientResult,
    ClientSetup,
    Defense,
    Interval,
    check_choice,
    register_defense,
    step_slices,
)
from gradleak.errors import ConfigError

ACCOUNTANTS = ("prv", "rdp", "gdp")


@functools.lru_cache(maxsize=256)
def opacus_epsilon(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                   accountant: str) -> float:
    """The epsilon Opacus' ``accountant`` reports after ``steps`` steps (for ``delta``).

    Cached: a training that simulates every round asks the same question each time.
    """
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    # the accountant's own record of the mechanism: (sigma, sample rate, number of steps)
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(acc.get_epsilon(delta=delta))


@functools.lru_cache(maxsize=256)
def opacus_noise_multiplier(*, target_epsilon: float, delta: float, sample_rate: float,
                            steps: int, accountant: str) -> float:
    """The noise multiplier Opacus' ``get_noise_multiplier`` finds for ``target_epsilon``."""
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(get_noise_multiplier(
            target_epsilon=target_epsilon, target_delta=delta, sample_rate=sample_rate,
            steps=steps, accountant=accountant))


@register_defense("dpsgd")
@dataclass(frozen=True)
class DPSGD(Defense):
    """Per-sample clipping and Gaussian noise in the client's training (Opacus).

    Give either ``noise_multiplier`` (sigma) or ``target_epsilon`` (then sigma is the one
    Opacus' ``get_noise_multiplier`` finds for ``delta``, ``sample_rate`` and the steps).

    Attributes:
        noise_multiplier: sigma; the noise std is ``sigma * max_grad_norm``.
        max_grad_norm: C, the per-sample clipping bound.
        sample_rate: the probability that a record of the client's data set is in a batch
            (batch size / data set size), used by the accountant.
        delta: the delta of the reported (epsilon, delta) guarantee.
        target_epsilon: alternative to ``noise_multiplier``.
        steps: DP-SGD steps the client's whole training takes, for the accountant (None:
            the steps of this round).
        accountant: Opacus' accountant: ``prv`` (Opacus' default), ``rdp`` or ``gdp``.

    Example:
        >>> import gradleak as gl
        >>> model = gl.models.create("lenet")
        >>> x, y = gl.data.load("sample", size=32, n=2, seed=0)
        >>> obs, _ = gl.simulate(model, x, y, defense={"name": "dpsgd", "noise_multiplier": 1.1,
        ...     "max_grad_norm": 1.0, "sample_rate": 0.01, "delta": 1e-5})
        >>> sorted(obs.defense_report)[:2]
        ['accountant', 'delta']
    """

    noise_multiplier: float | None = None
    max_grad_norm: float = 1.0
    sample_rate: float = 0.01
    delta: float = 1e-5
    target_epsilon: float | None = None
    steps: int | None = None
    accountant: str = "prv"
    stage = "training"
    ranges = {
        "noise_multiplier": Interval(0.0, 1e4, optional=True),
        "max_grad_norm": Interval(0.0, None, low_open=True),
        "sample_rate": Interval(0.0, 1.0, low_open=True),
        "delta": Interval(0.0, 1.0, low_open=True, high_open=True),
        "target_epsilon": Interval(0.0, 1e4, low_open=True, optional=True),
        "steps": Interval(1, 1e9, integer=True, optional=True),
    }

    def validate(self) -> None:
        super().validate()
        check_choice(self.name, "accountant", self.accountant, ACCOUNTANTS)
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ConfigError(
                "defense 'dpsgd': give exactly one of noise_multiplier (sigma) and "
                "target_epsilon, e.g. {'name': 'dpsgd', 'noise_multiplier': 1.1}"
            )

    # ------------------------------------------------------------------ privacy
    def sigma(self, steps: int) -> float:
        """The noise multiplier used for a training of ``steps`` accounted steps."""
        if self.noise_multiplier is not None:
            return float(self.noise_multiplier)
        assert self.target_epsilon is not None
        return opacus_noise_multiplier(
            target_epsilon=float(self.target_epsilon), delta=float(self.delta),
            sample_rate=float(self.sample_rate), steps=int(steps), accountant=self.accountant)

    def privacy(self, round_steps: int) -> dict[str, Any]:
        """The accounted guarantee: sigma, steps, and the epsilon Opacus reports for delta.

        If the chosen accountant fails (PRV needs memory that grows as sigma shrinks: at
        sigma 0.01 it asks for >100 GiB), Opacus' RDP accountant is used and the report says
        so in ``accountant_note``.
        """
        import opacus

        steps = int(self.steps or round_steps)
        sigma = self.sigma(steps)
        report: dict[str, Any] = {
            "epsilon": None, "delta": float(self.delta), "noise_multiplier": sigma,
            "max_grad_norm": float(self.max_grad_norm), "sample_rate": float(self.sample_rate),
            "steps": steps, "accountant": self.accountant, "opacus": str(opacus.__version__)}
        if sigma == 0:
            report["accountant_note"] = "no noise: no finite epsilon"
            return report
        tried = [self.accountant] + (["rdp"] if self.accountant != "rdp" else [])
        for name in tried:
            try:
                report["epsilon"] = opacus_epsilon(
                    noise_multiplier=sigma, sample_rate=float(self.sample_rate), steps=steps,
                    delta=float(self.delta), accountant=name)
            except (MemoryError, ValueError, OverflowError, RuntimeError) as exc:
                report["accountant_note"] = f"{name} failed ({type(exc).__name__})"
                continue
            report["accountant"] = name
            break
        return report

    # ------------------------------------------------------------------ client
    def prepare_model(self, model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
        """Opacus' ``ModuleValidator``: fix what cannot be trained per sample (BatchNorm)."""
        from opacus.validators import ModuleValidator

        if not ModuleValidator.validate(model, strict=False):
            return model, {}
        before = {n: type(m).__name__ for n, m in model.named_modules()}
        logging.getLogger("opacus").setLevel(logging.WARNING)
        fixed = ModuleValidator.fix(model)
        errors = ModuleValidator.validate(fixed, strict=False)
        if errors:
            raise ConfigError(
                f"defense 'dpsgd': Opacus cannot train this model per sample ({errors[0]}); "
                "replace the offending layers"
            )
        changed = [f"{n}: {before[n]} -> {type(m).__name__}"
                   for n, m in fixed.named_modules() if n in before and before[n] !=
                   type(m).__name__]
        return fixed, {"model_changed": True, "opacus_fixed": changed}

    def run_client(self, model: nn.Module, images: Tensor, labels: Tensor,
                   setup: ClientSetup) -> ClientResult:
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer

        gen = torch.Generator().manual_seed(setup.seed)
        sent, report = self.prepare_model(copy.deepcopy(model))
        slices = step_slices(len(images), setup.local_batch_size, setup.local_steps)
        report.update(self.privacy(len(slices)))
        work = copy.deepcopy(sent)
        params = [p for p in work.parameters() if p.requires_grad]
        before = [p.detach().clone() for p in params]
        gsm = GradSampleModule(work, loss_reduction="mean")
        opt = DPOptimizer(
            torch.optim.SGD(params, lr=setup.local_lr),
            noise_multiplier=report["noise_multiplier"], max_grad_norm=float(self.max_grad_norm),
            expected_batch_size=len(images[slices[0]]),
            loss_reduction="mean", generator=gen,
        )
        fedsgd = setup.local_steps == 1 and setup.local_batch_size is None
        for sl in slices:
            xb, yb = images[sl], labels[sl]
            opt.expected_batch_size = len(xb)
            opt.zero_grad(set_to_none=True)
            with warnings.catch_warnings():  # Opacus' hooks on a model whose input needs no grad
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                setup.loss_fn(setup.forward(gsm, xb), yb).backward()
            if fedsgd:
                opt.pre_step()
                update = [p.grad.detach().clone() for p in params]  # type: ignore[union-attr]
                return ClientResult(sent, update, "gradient", report)
            opt.step()
        delta = [p.detach() - b for p, b in zip(params, before, strict=True)]
        return ClientResult(sent, delta, "delta", report)
