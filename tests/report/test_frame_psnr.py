"""GIF frames carry the PSNR of their own frame, not the final one (issue 14)."""

from __future__ import annotations

import pytest

from gradleak.metrics import evaluate
from gradleak.report import gifs
from gradleak.report.gifs import GifPanel, frame_psnr
from tests.report.factory import make_run


def test_frame_psnr_is_the_matched_psnr_of_that_frame() -> None:
    rec, truth = make_run(n=3, snapshots=5)
    values = [frame_psnr(truth.images, s) for s in rec.trace.snapshots]
    assert all(v is not None for v in values)
    assert values == sorted(values) and values[0] < 15 < values[-1]  # snapshots approach
    # the last snapshot is the final result: the same number evaluate reports
    assert values[-1] == pytest.approx(float(evaluate(rec, truth)["psnr"]), rel=1e-5)
    assert frame_psnr(None, rec.images) is None
    assert frame_psnr(truth.images[:, :1], rec.images) is None  # shapes do not compare


def test_side_by_side_captions_change_with_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    rec, truth = make_run(n=2, snapshots=4)
    captions: list[str] = []
    real = gifs._panel

    def spy(images, caption, target):  # noqa: ANN001, ANN202
        captions.append(caption)
        return real(images, caption, target)

    monkeypatch.setattr(gifs, "_panel", spy)
    gifs.side_by_side_frames([GifPanel(rec, "l2 matching")], truth.images)
    shown = [c for c in captions if c.startswith("l2 matching")]
    assert len(shown) == 4 and len(set(shown)) == 4  # one PSNR per frame, all different
    assert shown[-1] == f"l2 matching: PSNR {frame_psnr(truth.images, rec.images):.1f} dB"
