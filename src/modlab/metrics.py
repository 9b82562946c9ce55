"""Per-label epoch metrics with torchmetrics, flattened to `<split>/<metric>/<label>` keys.

Metrics accumulate over the whole epoch (and sync across DDP ranks) before they are computed, so a value
is never an average of per-batch values. Targets of -1 are ignored; soft targets are binarized at 0.5.
"""

from __future__ import annotations

import logging
import math

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MultilabelAUROC,
    MultilabelAveragePrecision,
    MultilabelF1Score,
    MultilabelPrecision,
    MultilabelRecall,
    MultilabelStatScores,
)

log = logging.getLogger(__name__)

IGNORE = -1
# Ranking metrics are undefined for a label that has only one class in the split.
NEEDS_BOTH_CLASSES = ("auroc", "auprc")


def build_metrics(num_labels: int, threshold: float = 0.5) -> MetricCollection:
    kw = dict(num_labels=num_labels, average=None, ignore_index=IGNORE)
    return MetricCollection({
        "f1": MultilabelF1Score(threshold=threshold, **kw),
        "precision": MultilabelPrecision(threshold=threshold, **kw),
        "recall": MultilabelRecall(threshold=threshold, **kw),
        "auroc": MultilabelAUROC(**kw),
        "auprc": MultilabelAveragePrecision(**kw),
        "stats": MultilabelStatScores(threshold=threshold, **kw),
    })


def metric_targets(labels: torch.Tensor) -> torch.Tensor:
    """Integer targets for torchmetrics: soft labels binarized at 0.5, unknown kept as -1."""
    return torch.where(labels < 0, torch.full_like(labels, IGNORE), (labels >= 0.5).to(labels.dtype)).long()


def flatten(computed: dict[str, torch.Tensor], label_names: list[str], split: str) -> dict[str, float]:
    """{'val/f1/toxic': .., 'val/f1_macro': .., 'val/positives/toxic': ..}; undefined values are NaN."""
    stats = computed["stats"].reshape(len(label_names), -1).double()  # tp, fp, tn, fn, support
    positives, negatives = stats[:, 0] + stats[:, 3], stats[:, 1] + stats[:, 2]
    out: dict[str, float] = {}
    for metric, values in computed.items():
        if metric == "stats":
            continue
        values = values.detach().double().cpu().reshape(-1)
        for j, name in enumerate(label_names):
            value = float(values[j])
            if metric in NEEDS_BOTH_CLASSES and (positives[j] == 0 or negatives[j] == 0):
                value = math.nan
            out[f"{split}/{metric}/{name}"] = value
        defined = [out[f"{split}/{metric}/{n}"] for n in label_names if not math.isnan(out[f"{split}/{metric}/{n}"])]
        out[f"{split}/{metric}_macro"] = sum(defined) / len(defined) if defined else math.nan
    for j, name in enumerate(label_names):
        out[f"{split}/positives/{name}"] = float(positives[j])
    undefined = [n for j, n in enumerate(label_names) if positives[j] == 0 or negatives[j] == 0]
    if undefined:
        log.info("%s: %s have a single class in this split; ROC/PR-AUC are NaN and left out of the macro",
                 split, ", ".join(undefined))
    return out
