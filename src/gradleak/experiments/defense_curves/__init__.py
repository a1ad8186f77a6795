"""``defense-curves``: leakage and accuracy cost of defenses at increasing strength.

Importing the package registers the experiment (``runner``).
"""

from gradleak.experiments.defense_curves import runner  # noqa: F401  (registration)
from gradleak.experiments.defense_curves.settings import NAME, Settings, resolve_settings

__all__ = ["NAME", "Settings", "resolve_settings"]
