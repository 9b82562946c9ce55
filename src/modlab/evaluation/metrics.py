"""Per-label epoch metrics with torchmetrics, flattened to `<split>/<metric>/<label>` keys.

Metrics are computed once per epoch from every prediction of the split (gathered across DDP ranks, each
table row once: DistributedSampler pads uneven splits with repeated rows), so a value is never an average
of per-batch values. Targets of -1 are ignored; soft targets are binarized at 0.5.

Keys (`<split>` is val or test):
  <split>/{f1,precision,recall,auroc,auprc}/<label>   per label; F1/precision/recall at 0.5
  <split>/{...}_macro                                  mean over the labels where the value is defined
  <split>/{f1,precision,recall,auroc,auprc}_micro      pooled over every (row, label) pair
  <split>/positives/<label>                            positive targets seen
  <split>/examples                                     rows scored (each table row once)
  <split>/{f1,precision,recall}_tuned/<label>          at the per-label thresholds tuned on val
  <split>/{...}_tuned_macro, <split>/{...}_tuned_micro
  val/threshold/<label>                                the tuned thresholds themselves

Undefined values are NaN and left out of the macro average: every metric of a label with no positives in
the split (nothing to detect), and ROC-AUC / PR-AUC of a label with no negatives.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MultilabelAUROC,
    MultilabelAveragePrecision,
    MultilabelF1Score,
    MultilabelPrecision,
    MultilabelRecall,
    MultilabelStatScores,
)
from torchmetrics.functional.classification import (
    binary_precision_recall_curve,
    binary_roc,
    multilabel_stat_scores,
)
from torchmetrics.utilities import dim_zero_cat

log = logging.getLogger(__name__)

IGNORE = -1
# Metrics that are meaningless without positives / without negatives in the split.
NEEDS_POSITIVES = ("f1", "precision", "recall", "auroc", "auprc")
NEEDS_NEGATIVES = ("auroc", "auprc")
_noted: set[tuple[str, tuple[str, ...]]] = set()


def build_metrics(num_labels: int, threshold: float = 0.5) -> MetricCollection:
    """Fed the whole split at once, already gathered: they must not sync across ranks again."""
    kw = dict(num_labels=num_labels, ignore_index=IGNORE, sync_on_compute=False)
    at = dict(threshold=threshold, **kw)
    return MetricCollection({
        "f1": MultilabelF1Score(average=None, **at),
        "precision": MultilabelPrecision(average=None, **at),
        "recall": MultilabelRecall(average=None, **at),
        "auroc": MultilabelAUROC(average=None, **kw),
        "auprc": MultilabelAveragePrecision(average=None, **kw),
        "stats": MultilabelStatScores(average=None, **at),
        "f1_micro": MultilabelF1Score(average="micro", **at),
        "precision_micro": MultilabelPrecision(average="micro", **at),
        "recall_micro": MultilabelRecall(average="micro", **at),
        "auroc_micro": MultilabelAUROC(average="micro", **kw),
        "auprc_micro": MultilabelAveragePrecision(average="micro", **kw),
    })


class PredictionStore(Metric):
    """Every (probabilities, raw labels, table row) of an epoch, gathered across DDP ranks, each row once.

    Threshold tuning, tuned-threshold metrics, curves and the report's error showcase need the whole
    split's predictions, not a per-batch summary.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("rows", default=[], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor) -> None:
        self.probs.append(probs.detach().float())
        self.labels.append(labels.detach().float())
        self.rows.append(rows.detach().long())

    def compute(self) -> dict[str, np.ndarray]:
        if isinstance(self.probs, list) and not self.probs:  # after a DDP sync the states are tensors
            return {}
        out = {k: dim_zero_cat(getattr(self, k)).cpu().numpy() for k in ("probs", "labels", "rows")}
        _, first = np.unique(out["rows"], return_index=True)  # by row; drops DistributedSampler's repeats
        return {k: v[first] for k, v in out.items()}


def compute(collection: MetricCollection) -> dict[str, torch.Tensor]:
    """collection.compute() without torchmetrics' per-epoch warnings about single-class labels
    (flatten() NaNs those values and logs one note instead)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"No (positive|negative) samples")
        return collection.compute()


def metric_targets(labels) -> torch.Tensor:
    """Integer targets for torchmetrics: soft labels binarized at 0.5, unknown kept as -1."""
    labels = _tensor(labels)
    return torch.where(labels < 0, torch.full_like(labels, IGNORE), (labels >= 0.5).to(labels.dtype)).long()


def _tensor(x) -> torch.Tensor:
    """A tensor of x; arrays are copied (evaluation results hold read-only arrays, which torch cannot wrap)."""
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))


def _class_counts(stats: torch.Tensor, num_labels: int) -> tuple[torch.Tensor, torch.Tensor]:
    stats = stats.reshape(num_labels, -1).double()  # tp, fp, tn, fn, support
    return stats[:, 0] + stats[:, 3], stats[:, 1] + stats[:, 2]


def _note_undefined(split: str, names: list[str], positives, negatives) -> None:
    missing = tuple(n for j, n in enumerate(names) if positives[j] == 0 or negatives[j] == 0)
    if missing and (split, missing) not in _noted:
        _noted.add((split, missing))
        log.info("%s: %s have a single class in this split; their undefined metrics are NaN and left out of "
                 "the macro average", split, ", ".join(missing))


def _per_label(out: dict, split: str, metric: str, values, names: list[str], positives, negatives) -> None:
    values = _tensor(values).detach().double().cpu().reshape(-1)
    base = metric.split("_")[0]
    for j, name in enumerate(names):
        value = float(values[j])
        if (base in NEEDS_POSITIVES and positives[j] == 0) or (base in NEEDS_NEGATIVES and negatives[j] == 0):
            value = math.nan
        out[f"{split}/{metric}/{name}"] = value
    defined = [out[f"{split}/{metric}/{n}"] for n in names if not math.isnan(out[f"{split}/{metric}/{n}"])]
    out[f"{split}/{metric}_macro"] = sum(defined) / len(defined) if defined else math.nan


def _micro(out: dict, split: str, metric: str, value, positives, negatives) -> None:
    base = metric.split("_")[0]
    undefined = (base in NEEDS_POSITIVES and positives.sum() == 0) or (base in NEEDS_NEGATIVES and negatives.sum() == 0)
    out[f"{split}/{metric}"] = math.nan if undefined else float(_tensor(value).double())


def flatten(computed: dict[str, torch.Tensor], label_names: list[str], split: str) -> dict[str, float]:
    """{'val/f1/toxic': .., 'val/f1_macro': .., 'val/f1_micro': .., 'val/positives/toxic': ..}."""
    positives, negatives = _class_counts(computed["stats"], len(label_names))
    out: dict[str, float] = {}
    for metric, values in computed.items():
        if metric == "stats":
            continue
        if metric.endswith("_micro"):
            _micro(out, split, metric, values, positives, negatives)
        else:
            _per_label(out, split, metric, values, label_names, positives, negatives)
    for j, name in enumerate(label_names):
        out[f"{split}/positives/{name}"] = float(positives[j])
    _note_undefined(split, label_names, positives, negatives)
    return out


# torchmetrics' multilabel metrics need two labels or more; a one-label taxonomy (a new policy category) is
# scored as that label twice and the copy's keys dropped: a duplicated column's per-label, macro and micro
# values are the single column's.
COPY = "\u0000copy"


def _twice(array) -> np.ndarray:
    return np.repeat(np.asarray(array), 2, axis=-1)


def _without_copy(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if not k.endswith(COPY)}


def split_metrics(probs: np.ndarray, labels: np.ndarray, label_names: list[str], split: str) -> dict[str, float]:
    """Every metric at 0.5 of a whole split's predictions (the torchmetrics collection above), flat keys.

    Values are float32, as Lightning logs them, so every consumer (checkpointing, metrics.json) sees the same.
    """
    if len(label_names) == 1:
        return _without_copy(split_metrics(_twice(probs), _twice(labels), [label_names[0], COPY], split))
    collection = build_metrics(len(label_names))
    collection.update(_tensor(probs), metric_targets(labels))
    values = flatten(compute(collection), label_names, split) | {f"{split}/examples": float(len(probs))}
    return {k: float(np.float32(v)) for k, v in values.items()}


def binarize(probs: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    """Decisions at per-label thresholds: positive when p >= threshold (as in the tuning curves)."""
    return (np.asarray(probs) >= np.asarray(thresholds, dtype=np.float64)).astype(np.int64)


def stat_scores(decisions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """[num_labels, 5] = tp, fp, tn, fn, support of 0/1 decisions against integer targets (-1 ignored)."""
    if np.asarray(targets).shape[1] == 1:
        return stat_scores(_twice(decisions), _twice(targets))[:1]
    return multilabel_stat_scores(_tensor(decisions), _tensor(targets),
                                  num_labels=targets.shape[1], average=None, ignore_index=IGNORE).numpy()


def threshold_scores(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, label_names: list[str],
                     split: str, suffix: str = "_tuned") -> dict[str, float]:
    """F1 / precision / recall per label, macro and micro, at the given per-label thresholds.

    The decisions are made here; torchmetrics gets 0/1 integer predictions (which it does not threshold).
    """
    if len(label_names) == 1:
        return _without_copy(threshold_scores(_twice(probs), _twice(labels), _twice(np.atleast_1d(thresholds)),
                                              [label_names[0], COPY], split, suffix))
    from torchmetrics.functional.classification import (
        multilabel_f1_score,
        multilabel_precision,
        multilabel_recall,
    )

    targets = metric_targets(labels)
    decisions = torch.as_tensor(binarize(probs, thresholds))
    n = len(label_names)
    stats = multilabel_stat_scores(decisions, targets, num_labels=n, average=None, ignore_index=IGNORE)
    positives, negatives = _class_counts(stats, n)
    out: dict[str, float] = {}
    for name, fn in (("f1", multilabel_f1_score), ("precision", multilabel_precision), ("recall", multilabel_recall)):
        _per_label(out, split, f"{name}{suffix}", fn(decisions, targets, n, average=None, ignore_index=IGNORE),
                   label_names, positives, negatives)
        _micro(out, split, f"{name}{suffix}_micro", fn(decisions, targets, n, average="micro", ignore_index=IGNORE),
               positives, negatives)
    return out


def _thin(x: np.ndarray, y: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= points:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
    return x[keep], y[keep]


def curves(probs: np.ndarray, labels: np.ndarray, label_names: list[str], points: int = 200) -> dict[str, dict]:
    """Per label {'pr': (recall, precision), 'roc': (fpr, tpr)}, thinned to about `points` points each.

    Labels with a single class in the split have no curves (they are left out).
    """
    targets = metric_targets(labels)
    preds = _tensor(probs).float()
    out: dict[str, dict] = {}
    for j, name in enumerate(label_names):
        t = targets[:, j]
        if not ((t == 1).any() and (t == 0).any()):
            continue
        precision, recall, _ = binary_precision_recall_curve(preds[:, j], t, ignore_index=IGNORE)
        fpr, tpr, _ = binary_roc(preds[:, j], t, ignore_index=IGNORE)
        out[name] = {"pr": _thin(recall.numpy(), precision.numpy(), points),
                     "roc": _thin(fpr.numpy(), tpr.numpy(), points)}
    return out
