"""The demo (``gradleak demo``): the seed's headline experiment and classics, one report.

Sections, in page order (each a module of :mod:`gradleak.experiments.demo.sections`):

1. **l2 vs cosine on a 4-layer MLP** (the headline, batch size 1).
2. **l2 vs cosine at batch 2, 4 and 8 with repeated labels** (the headline's second half).
3. **Inverting Gradients on LeNet** (the ``ig`` recipe on DLG's sigmoid LeNet).
4. **iDLG label recovery** (Zhao et al., 2020) and the ``idlg`` attack.
5. **The bias attack and the batch-2 ambiguity**.

Each attack run gets its own report folder (``gradleak.report.write_run``, through
``gradleak.run.attack_observation``); the top-level ``index.html`` links them and embeds the
GIFs and grids; ``metrics.json`` holds every number. The demo is also the registered
experiment ``demo`` (``gradleak experiment demo``).

Adding a section is one new module in ``sections/`` that decorates its function with
:func:`~gradleak.experiments.demo.base.demo_section`.
"""

from gradleak.experiments.demo import sections  # noqa: F401  (registration)
from gradleak.experiments.demo.base import (
    DEMO_SECTIONS,
    DemoContext,
    DemoSection,
    SectionResult,
    demo_section,
    ordered_sections,
)
from gradleak.experiments.demo.runner import DemoResult, demo_experiment, run_demo

__all__ = ["DEMO_SECTIONS", "DemoContext", "DemoResult", "DemoSection", "SectionResult",
           "demo_experiment", "demo_section", "ordered_sections", "run_demo"]
