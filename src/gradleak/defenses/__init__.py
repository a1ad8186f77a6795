"""Client-side defenses: ``create(name, **settings)``, ``available()``, ``parameters(name)``.

Registered on import, by where they act: on the update (``noise``, ``laplace``, ``clip``,
``prune``, ``sparsify``, ``sign``, ``quantize``), in training (``dpsgd``, Opacus), on the
representation (``soteria``), on the data (``mixup``, ``instahide``), in the model
(``precode``) and over clients (``secagg``). Adaptive surrogates for attackers:
:mod:`gradleak.defenses.adaptive`; the accuracy cost: :func:`utility`.
"""

from gradleak.defenses import (  # noqa: F401  (registration)
    adaptive,
    dpsgd,
    mixing,
    perturb,
    precode,
    quantize,
    secagg,
    soteria,
    sparsify,
)
from gradleak.defenses.base import (
    DEFENSES,
    ClientResult,
    ClientSetup,
    Defense,
    Interval,
    StepHooks,
    available,
    create,
    parameters,
    register_defense,
)
from gradleak.defenses.cost import UtilityResult, utility
from gradleak.defenses.spec import parse, resolve

__all__ = [
    "DEFENSES",
    "adaptive",
    "ClientResult",
    "ClientSetup",
    "Defense",
    "Interval",
    "StepHooks",
    "UtilityResult",
    "available",
    "create",
    "parameters",
    "parse",
    "register_defense",
    "resolve",
    "utility",
]
