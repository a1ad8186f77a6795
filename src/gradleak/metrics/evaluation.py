"""``evaluate(rec, truth)``: the one place where ground truth meets a reconstruction."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gradleak.metrics.image import MetricError, mse, psnr, ssim
from gradleak.metrics.labels import label_scores
from gradleak.metrics.matching import match
from gradleak.metrics.perceptual import lpips
from gradleak.metrics.scores import Scores
from gradleak.types import GroundTruth, Reconstruction

#: slack allowed outside [0, 1] for float round-off before an image counts as out of range
RANGE_TOL = 1e-4


def _check_images(x: Any, what: str) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise MetricError(f"{what} images must be a (N, C, H, W) tensor, got {shape}")
    if not x.dtype.is_floating_point:
        raise MetricError(f"{what} images must be floating point in [0, 1] (divide uint8 by 255)")
    x = x.detach().to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise MetricError(f"{what} images contain NaN or inf")
    if x.numel() == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    if lo < -RANGE_TOL or hi > 1 + RANGE_TOL:
        raise MetricError(
            f"{what} images span [{lo:.4g}, {hi:.4g}] but must lie in [0, 1]; undo any "
            "normalisation (and clamp) before evaluating"
        )
    return x.clamp(0.0, 1.0)


def _check_labels(x: Any, n: int, what: str) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 1 or x.dtype.is_floating_point:
        raise MetricError(f"{what} labels must be a 1-D integer tensor")
    if len(x) != n:
        raise MetricError(f"{what} has {len(x)} labels for {n} images")
    return x.detach().to("cpu", torch.int64)


def _num_classes(rec: Reconstruction, given: int | None) -> int | None:
    if given is not None:
        return int(given)
    value = rec.config.get("num_classes") if isinstance(rec.config, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def evaluate(
    rec: Reconstruction,
    truth: GroundTruth,
    *,
    num_classes: int | None = None,
    match_images: bool = True,
) -> Scores:
    """Scores a reconstruction against the client's private batch.

    Reconstructed images are first assigned to distinct true images (Hungarian assignment on
    pairwise MSE, :func:`gradleak.metrics.match`) when the batch holds more than one image;
    then per-image PSNR, SSIM (Wang et al., 2004) and MSE are computed on the pairs and
    averaged. Labels are scored twice: per matched pair (``label_acc``) and as a multiset
    with the iLRG metrics (Ma et al., ICLR 2023; see :func:`label_scores`).

    Args:
        rec: the attack's output; images in [0, 1], same shape as ``truth.images``, or fewer
            images when the reconstruction is marked partial (``rec.expected`` set).
        truth: the private images and labels.
        num_classes: classes the label-count accuracies average over; None reads
            ``rec.config["num_classes"]`` if present, else uses ``max(label) + 1``.
        match_images: set False to score ``rec.images[i]`` against ``truth.images[i]``.

    Returns:
        :class:`Scores` with keys ``psnr``, ``ssim``, ``mse`` (means over images), ``lpips``
        (None unless available offline), ``label_acc``, ``label_existence_acc``,
        ``label_count_acc``, ``label_count_error``, ``label_instance_recall`` (all None
        when ``rec.labels`` is None), ``num_images`` (private images), ``num_recovered``,
        ``num_missed``, ``missed`` (true indices no reconstruction was matched to),
        ``partial``, ``attack``, ``assignment`` (the true index of each reconstruction) and
        ``per_image`` (one dict per reconstruction: ``index`` into truth, ``psnr``, ``ssim``,
        ``mse``, ``lpips``, ``label``, ``true_label``, ``label_correct``, ``missed`` False;
        then one entry per missed true image with ``missed`` True and None scores).

        A partial result (fewer images than the batch, ``rec.expected`` set) is scored on
        what was recovered: the found images are matched to distinct true images (Hungarian)
        and the means run over them; the unmatched true images are reported as missed. The
        label-count metrics compare whole multisets and stay None for a partial result.

    Raises:
        MetricError: shapes differ, images lie outside [0, 1], or labels are malformed.

    Example:
        >>> import gradleak as gl
        >>> x = torch.rand(2, 3, 16, 16); y = torch.tensor([1, 4])
        >>> rec = gl.Reconstruction(x.flip(0), y.flip(0), attack="demo", config={})
        >>> s = gl.evaluate(rec, gl.GroundTruth(x, y))
        >>> s["psnr"], s["label_acc"], s["assignment"]
        (inf, 1.0, [1, 0])
    """
    if not isinstance(rec, Reconstruction) or not isinstance(truth, GroundTruth):
        raise MetricError("evaluate takes (Reconstruction, GroundTruth)")
    r = _check_images(rec.images, "reconstructed")
    t = _check_images(truth.images, "true")
    n_true = t.shape[0]
    if n_true == 0:
        raise MetricError("the batch is empty")
    partial = r.shape[1:] == t.shape[1:] and rec.expected is not None and r.shape[0] < n_true
    if r.shape != t.shape and not partial:
        hint = (
            " (a partial result must say so: Reconstruction(..., expected=batch size))"
            if r.shape[1:] == t.shape[1:] and r.shape[0] < n_true
            else ""
        )
        raise MetricError(
            f"reconstructed images {tuple(r.shape)} and true images {tuple(t.shape)} differ "
            "in shape; an attack must return one image per private image at the data shape"
            + hint
        )
    n = r.shape[0]
    true_labels = _check_labels(truth.labels, n_true, "the ground truth")
    rec_labels = None if rec.labels is None else _check_labels(rec.labels, n, "the reconstruction")

    if match_images and (n > 1 or partial):
        assignment = match(r, t)
    else:
        assignment = torch.arange(n)
    paired = t[assignment]
    p, s, e = psnr(r, paired), ssim(r, paired), mse(r, paired)
    lp = lpips(r, paired) if n else None

    per_image: list[dict[str, Any]] = []
    for i in range(n):
        j = int(assignment[i])
        label = None if rec_labels is None else int(rec_labels[i])
        per_image.append(
            {
                "index": j,
                "psnr": float(p[i]),
                "ssim": float(s[i]),
                "mse": float(e[i]),
                "lpips": None if lp is None else float(lp[i]),
                "label": label,
                "true_label": int(true_labels[j]),
                "label_correct": None if label is None else label == int(true_labels[j]),
                "missed": False,
            }
        )
    matched = set(assignment.tolist())
    missed = [j for j in range(n_true) if j not in matched]
    for j in missed:
        per_image.append(
            {"index": j, "psnr": None, "ssim": None, "mse": None, "lpips": None, "label": None,
             "true_label": int(true_labels[j]), "label_correct": None, "missed": True}
        )

    def mean(x: Tensor) -> float | None:
        return float(x.mean()) if len(x) else None

    scores: dict[str, Any] = {
        "psnr": mean(p),
        "ssim": mean(s),
        "mse": mean(e),
        "lpips": None if lp is None else float(lp.mean()),
        "label_acc": None,
        "label_existence_acc": None,
        "label_count_acc": None,
        "label_count_error": None,
        "label_instance_recall": None,
        "num_images": n_true,
        "num_recovered": n,
        "num_missed": len(missed),
        "missed": missed,
        "partial": bool(missed),
        "attack": rec.attack,
        "assignment": assignment.tolist(),
        "per_image": per_image,
    }
    if rec_labels is not None and n:
        scores["label_acc"] = float((rec_labels == true_labels[assignment]).double().mean())
    if rec_labels is not None and not missed:
        counts = label_scores(rec_labels, true_labels, num_classes=_num_classes(rec, num_classes))
        for key in (
            "label_existence_acc",
            "label_count_acc",
            "label_count_error",
            "label_instance_recall",
        ):
            scores[key] = counts[key]
    return Scores(scores)
