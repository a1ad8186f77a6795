"""Generative attacks (GIAS, GGL, GIFD); each module registers its attack on import.

They search a generator trained on public images of the client's domain
(:mod:`gradleak.generative`) instead of pixels; see :mod:`.representations` for how the
optimisation engine's representation seam decodes latents, per-image weights and features.
"""

from gradleak.attacks.generative import ggl, gias, gifd  # noqa: F401  (registration)
