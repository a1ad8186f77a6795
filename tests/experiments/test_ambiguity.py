"""The bias attack's batch-2 ambiguity study (moved out of attacks/ into experiments/)."""

from __future__ import annotations

import torch

import gradleak as gl
from gradleak.experiments.ambiguity import batch2_ambiguity
from gradleak.report.ambiguity import write_ambiguity_png

from ..attacks.analytic.helpers import photos


def test_batch2_ambiguity_rows_lie_on_the_line_through_the_inputs(tmp_path) -> None:
    model = gl.models.create("mlp", depth=2, width=256).double()
    amb = batch2_ambiguity(model, photos(2, dtype=torch.float64), torch.tensor([0, 0]))
    s = amb.summary()
    assert s["max_fit_residual"] < 1e-10
    assert s["pure_rows"] + s["convex_rows"] + s["extrapolated_rows"] == s["rows"]
    assert s["pure_rows"] > 0 and s["convex_rows"] > 0
    # the all-row average is a single point of the line: neither input
    assert 0.05 < s["average_weight"] < 0.95
    out = write_ambiguity_png(amb, tmp_path / "amb.png")
    assert out.stat().st_size > 1000
