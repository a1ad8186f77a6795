"""Experiment ``batch-discard``: batch size, repeated labels and GradInversion's priors.

The study behind issue "Prior knowledge I": how much does a larger batch protect a client,
and what happens to batch label recovery when labels repeat?

* **Reconstruction vs batch size.** A BN ConvNet (IG's architecture, small width) whose BN
  running statistics come from earlier rounds on other photos, attacked with ``ig`` (Geiping
  et al., NeurIPS 2020) and ``gradinversion`` (Yin et al., CVPR 2021) at equal iterations,
  for unique labels and for repeated labels (every image from one of two classes). Mean
  PSNR after Hungarian matching and the label-count accuracy of the labels each attack
  recovered, per batch size.
* **Label recovery vs batch size.** ``yin`` (GradInversion), ``ilrg`` (Ma et al., ICLR 2023)
  and ``llg`` (Wainakh et al., PETS 2022) on the same updates: ``yin`` assumes unique labels
  and fails on repeats; the counting strategies do not.
* **iLRG on untrained LeNet / MLP.** Count and existence accuracy at batch 24 and 128 with
  repeated labels (the setting of the iLRG paper's tables).
* **Ablation.** ``gradinversion`` with each prior removed, and ``ig``, at batch 8 on a BN
  ConvNet where both attacks do reconstruct within a CPU budget: ``ablation_model``
  ``convnet_small`` (three conv-BN-ReLU blocks, width 16, 16 px). On IG's 8-block ConvNet
  (``ablation_model=convnet``, width 8) neither attack gets clear of a constant gray image at
  1000 iterations, so that table ranks smoothness, not recovery.

Images are the bundled photos (``sample`` and ``holdout``); batches larger than the 70 photos
(or needing more images of one class) use random resized crops and mirrors of them, so that
every image in a batch is distinct. Labels are assigned by the client, in [0, num_classes);
for an untrained model the photo's content does not matter.

Run ``gradleak experiment batch-discard`` (``--quick`` for a smoke test). Settings (``--set
key=value``): ``batch_sizes``, ``iterations``, ``restarts``, ``size``, ``width``,
``num_classes``, ``attacks``, ``gradinversion`` (its overrides, see
:func:`calibrated_gradinversion`), ``ablation_batch``, ``ablation_size``, ``ablation_width``,
``ablation_seeds`` (one batch and server model per seed, PSNR averaged),
``ablation_variants`` (a subset of the ablation's rows by name; default all), ``model``
(the server's BN ConvNet: ``convnet``, IG's, or ``convnet_small``, three blocks; the ablation
has its own ``ablation_model``), ``bn_mode``
(``train``: the client computes its update in training mode, BN on batch statistics, the
default; ``eval``: BN on the running statistics the server sent), ``parts`` (a subset
of ``labels``, ``attacks``, ``ablation``), ``label_trials``, ``device`` (where the attack
part and the ablation run, e.g. ``cuda``; the client and the server share it). The ablation
alone, as in issue #3's criterion::

    gradleak experiment batch-discard --set parts=ablation --set iterations=1000 \
        --set ablation_seeds=[0,1]
"""

from gradleak.experiments.batch_discard.ablation import (
    GRAY,
    GRAY_MARGIN_DB,
    ablation_batch,
    ablation_runs,
    ablation_settings,
    ablation_study,
    ablation_table,
)
from gradleak.experiments.batch_discard.data import (
    CIFAR_NORM,
    batch_labels,
    distinct_images,
    normalization,
    photo_pool,
    server_model,
)
from gradleak.experiments.batch_discard.parts import (
    attack_study,
    label_scores,
    label_study,
    run_attack,
)
from gradleak.experiments.batch_discard.runner import run
from gradleak.experiments.batch_discard.settings import (
    BN_MODES,
    NAME,
    PARTS,
    QUICK,
    Settings,
    attack_overrides,
    calibrated_gradinversion,
    calibrated_ig,
    resolve_settings,
)

__all__ = [
    "BN_MODES", "CIFAR_NORM", "GRAY", "GRAY_MARGIN_DB", "NAME", "PARTS", "QUICK", "Settings",
    "ablation_batch", "ablation_runs", "ablation_settings", "ablation_study", "ablation_table",
    "attack_overrides", "attack_study", "batch_labels", "calibrated_gradinversion",
    "calibrated_ig", "distinct_images", "label_scores", "label_study", "normalization",
    "photo_pool", "resolve_settings", "run", "run_attack",
    "server_model",
]
