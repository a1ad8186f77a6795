"""Learned attacks; each module registers its attack on import."""

from gradleak.attacks.learned import lti  # noqa: F401  (registration)
