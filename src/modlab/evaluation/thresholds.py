"""Per-label decision thresholds tuned on the validation split, saved as `thresholds.json`.

Objectives (config `thresholds`):
  f1         maximize F1 (default)
  precision  reach precision >= target with the most recall
  recall     reach recall >= target with the most precision
A label that cannot be tuned (a single class in the split, or an unreachable target) keeps the default
threshold and says why in the file. A prediction is positive when p >= threshold.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.classification import binary_precision_recall_curve

from modlab.errors import ModlabError
from modlab.evaluation.metrics import IGNORE, metric_targets

log = logging.getLogger(__name__)

OBJECTIVES = ("f1", "precision", "recall")


def check_config(objective: str, target: float | None) -> None:
    if objective not in OBJECTIVES:
        raise ModlabError(f"thresholds.objective={objective!r} is not one of {', '.join(OBJECTIVES)}")
    if objective != "f1" and (target is None or not 0.0 < float(target) <= 1.0):
        raise ModlabError(f"thresholds.objective={objective} needs thresholds.target in (0, 1], e.g. "
                          f"thresholds.target=0.9 (got {target})")


def _pick(precision: np.ndarray, recall: np.ndarray, thresholds: np.ndarray, objective: str,
          target: float | None) -> int | None:
    """Index of the chosen operating point on the curve (points are in increasing threshold order)."""
    p, r = precision[: len(thresholds)], recall[: len(thresholds)]
    if objective == "f1":
        score = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
        ok = np.ones_like(score, dtype=bool)
    elif objective == "precision":
        score, ok = r, p >= target
    else:
        score, ok = p, r >= target
    if not ok.any():
        return None
    score = np.where(ok, score, -np.inf)
    best = np.flatnonzero(score == score.max())
    return int(best[-1])  # ties: the highest threshold, i.e. the fewest positive decisions


def tune(probs: np.ndarray, labels: np.ndarray, label_names: list[str], objective: str = "f1",
         target: float | None = None, default: float = 0.5) -> dict:
    """The thresholds.json payload: {'thresholds': {label: t}, 'details': {label: {...}}, ...}."""
    check_config(objective, target)
    targets = metric_targets(labels)
    preds = torch.from_numpy(np.array(probs, dtype=np.float32))
    chosen, details = {}, {}
    for j, name in enumerate(label_names):
        t = targets[:, j]
        pos, neg = int((t == 1).sum()), int((t == 0).sum())
        note, index = None, None
        if pos == 0 or neg == 0:
            note = f"{'no positives' if pos == 0 else 'no negatives'} in the tuning split; default kept"
        else:
            precision, recall, thresholds = (x.double().numpy() for x in
                                             binary_precision_recall_curve(preds[:, j], t, ignore_index=IGNORE))
            index = _pick(precision, recall, thresholds, objective, target)
            if index is None:
                note = f"{objective} >= {target} is not reachable on the tuning split; default kept"
        if index is None:
            chosen[name] = float(default)
            details[name] = {"threshold": float(default), "tuned": False, "note": note, "positives": pos}
            log.info("threshold for %s: %s", name, note)
            continue
        p, r = float(precision[index]), float(recall[index])
        chosen[name] = float(thresholds[index])
        details[name] = {"threshold": chosen[name], "tuned": True, "precision": round(p, 6), "recall": round(r, 6),
                         "f1": round(2 * p * r / (p + r), 6) if p + r > 0 else 0.0, "positives": pos}
    return {"objective": objective, "target": target, "default": float(default), "rule": "positive if p >= threshold",
            "thresholds": chosen, "details": details}


def load(path: str | Path, label_names: list[str]) -> dict:
    """A thresholds.json payload whose labels must match `label_names`."""
    path = Path(path)
    if not path.is_file():
        raise ModlabError(f"thresholds file {path} does not exist; pass a run's thresholds.json or thresholds_path=null")
    try:
        payload = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ModlabError(f"{path} is not a thresholds.json written by modlab ({err})") from None
    return parse(payload, label_names, path)


def parse(payload, label_names: list[str], path) -> dict:
    """A thresholds.json payload checked: a threshold in [0, 1] (or null) for exactly `label_names`."""
    try:
        found = payload["thresholds"]
        values = {k: found[k] for k in found}
    except (KeyError, TypeError) as err:
        raise ModlabError(f"{path} is not a thresholds.json written by modlab (no {err})") from None
    bad = [k for k, v in values.items() if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                                                             or not 0.0 <= float(v) <= 1.0)]
    if bad:
        raise ModlabError(f"{path}: threshold of {bad[0]!r} is {values[bad[0]]!r}, not a number in [0, 1]; "
                          f"fix the file or re-run training to tune it again")
    if sorted(found) != sorted(label_names):
        raise ModlabError(f"{path} has thresholds for {sorted(found)} but the labels are {sorted(label_names)}; "
                          f"use the thresholds of a run with the same labels")
    return payload


def as_array(payload: dict, label_names: list[str]) -> np.ndarray:
    values = [payload["thresholds"][n] for n in label_names]
    return np.asarray([payload.get("default", 0.5) if v is None or math.isnan(v) else v for v in values])


def as_metrics(payload: dict, label_names: list[str], split: str = "val") -> dict[str, float]:
    """The thresholds as metrics.json entries: `val/threshold/<label>`."""
    return {f"{split}/threshold/{n}": float(payload["thresholds"][n]) for n in label_names}
