"""Client-side defenses: ``create(name, **settings)``, ``available()``, ``parameters(name)``.

Registered on import: update transforms (``noise``, ``laplace``, ``clip``, ``prune``,
``sparsify``, ``sign``, ``quantize``), the other defenses are added below as their modules
are imported.
"""

from gradleak.defenses import perturb, quantize, sparsify  # noqa: F401  (registration)
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
from gradleak.defenses.spec import parse, resolve

__all__ = [
    "DEFENSES",
    "ClientResult",
    "ClientSetup",
    "Defense",
    "Interval",
    "StepHooks",
    "available",
    "create",
    "parameters",
    "parse",
    "register_defense",
    "resolve",
]
