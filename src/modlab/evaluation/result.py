"""One immutable evaluation result per scored split, computed here once.

`evaluate()` turns a split's predictions into everything that is said about them: metrics at 0.5 and at
the tuned thresholds, the thresholds, confusion counts, curves, the most confident mistakes and the gate's
verdict. Renderers (metrics.json, report.md, the console table, W&B, compare) only read the result.

Further judgements (subgroup bias, robustness, ...) are `Section`s: each brings its own flat metrics
(`<split>/<section>/...`) and a table; every renderer shows any section the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from modlab.evaluation import gate as gate_mod
from modlab.evaluation import thresholds as thr
from modlab.evaluation.metrics import (
    binarize,
    curves,
    metric_targets,
    split_metrics,
    stat_scores,
    threshold_scores,
)


def _frozen(array) -> np.ndarray:
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class Predictions:
    """A split's probabilities and reference labels, one per table row, with the rows' ids and texts."""

    probs: np.ndarray
    labels: np.ndarray
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    meta: object = None  # the rows' metadata (a DataFrame, e.g. identity annotations), when the reader keeps it

    def __post_init__(self) -> None:
        for name in ("probs", "labels"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "ids", tuple(self.ids))
        object.__setattr__(self, "texts", tuple(self.texts))

    @classmethod
    def of_rows(cls, probs, labels, rows, table) -> Predictions:
        meta = None if table.meta is None else table.meta.iloc[np.asarray(rows)].reset_index(drop=True)
        return cls(probs, labels, tuple(str(table.ids[i]) for i in rows), tuple(table.texts[i] for i in rows), meta)

    def __len__(self) -> int:
        return len(self.probs)


@dataclass(frozen=True)
class Section:
    """A named group of extra judgements: flat metrics plus a table for the report, console and W&B."""

    title: str
    metrics: Mapping[str, float]
    header: tuple[str, ...] = ()
    rows: tuple[tuple, ...] = ()
    note: str = ""
    bars: Mapping[str, float] = field(default_factory=dict)  # a figure of the section: name -> value in [0, 1]
    bars_label: str = ""


@dataclass(frozen=True)
class EvaluationResult:
    split: str
    label_names: tuple[str, ...]
    predictions: Predictions
    metrics: Mapping[str, float]          # every flat key of this split (sections included)
    thresholds: Mapping | None            # the thresholds.json payload applied, if any
    operating: np.ndarray                 # per-label decision thresholds (0.5 without thresholds)
    confusion: np.ndarray                 # [labels, 5]: tp, fp, tn, fn, support at `operating`
    curves: Mapping[str, dict]            # per label {'pr': (x, y), 'roc': (x, y)}
    mistakes: Mapping[int, dict]          # per label index {'fp': rows, 'fn': rows}, most confident first
    gate: Mapping | None = None           # gate.json payload when a gate is configured
    sections: Mapping[str, Section] = field(default_factory=dict)

    @property
    def tuned(self) -> bool:
        return self.thresholds is not None


def confident_mistakes(probs: np.ndarray, targets: np.ndarray, decisions: np.ndarray, k: int) -> dict[int, dict]:
    """Per label: the k highest-probability false positives and the k lowest-probability false negatives."""
    out = {}
    for j in range(probs.shape[1]):
        fp = np.flatnonzero((targets[:, j] == 0) & (decisions[:, j] == 1))
        fn = np.flatnonzero((targets[:, j] == 1) & (decisions[:, j] == 0))
        out[j] = {"fp": fp[np.argsort(-probs[fp, j], kind="stable")][:k],
                  "fn": fn[np.argsort(probs[fn, j], kind="stable")][:k]}
    return out


def evaluate(predictions: Predictions, label_names: list[str], split: str, *, thresholds: dict | None = None,
             extra: Mapping[str, float] | None = None, gate=None, showcase: int = 5,
             sections: Mapping[str, Section] | None = None) -> EvaluationResult:
    """The result of one split. `extra`: values measured outside (e.g. the loss); `gate`: the gate config."""
    names = list(label_names)
    probs, labels = predictions.probs, predictions.labels
    metrics = split_metrics(probs, labels, names, split) | dict(extra or {})
    operating = np.full(len(names), 0.5)
    if thresholds is not None:
        operating = thr.as_array(thresholds, names)
        metrics |= thr.as_metrics(thresholds, names) | threshold_scores(probs, labels, operating, names, split)
    for section in (sections or {}).values():
        metrics |= dict(section.metrics)
    targets = metric_targets(labels).numpy()
    decisions = binarize(probs, operating)
    verdict = gate_mod.evaluate(metrics, names, gate, split)
    return EvaluationResult(
        split=split, label_names=tuple(names), predictions=predictions, metrics=MappingProxyType(metrics),
        thresholds=None if thresholds is None else MappingProxyType(dict(thresholds)), operating=_frozen(operating),
        confusion=_frozen(stat_scores(decisions, targets)), curves=MappingProxyType(curves(probs, labels, names)),
        mistakes=MappingProxyType(confident_mistakes(probs, targets, decisions, showcase) if showcase > 0 else {}),
        gate=None if verdict is None else MappingProxyType(verdict),
        sections=MappingProxyType(dict(sections or {})))


def check_config(cfg, label_names: list[str]) -> None:
    """Fail before any training on a bad `thresholds` or `gate` block (one-line ModlabError)."""
    t = cfg.get("thresholds") or {}
    if t.get("tune", True):
        thr.check_config(t.get("objective", "f1"), t.get("target"))
    gate_mod.minimums(cfg.get("gate"), label_names)
    gate_mod.bounds(cfg.get("gate"), "test")


def combined_metrics(results, extra: Mapping[str, float] | None = None) -> dict[str, float]:
    """metrics.json's content: every result's keys (val and test), plus run-level values such as model/params."""
    out: dict[str, float] = {}
    for result in results:
        out |= dict(result.metrics)
    return out | dict(extra or {})
