"""Quality gate: minimum F1 per label (or one minimum for every label), pass/fail per label and overall.

Config `gate`:
  min_f1: null | 0.6 | {toxic: 0.7, threat: 0.4, macro: 0.6}   (`macro` gates the macro average)
  tuned: true    judge F1 at the tuned thresholds when there are some, else at 0.5
  fail: false    after writing every output, exit non-zero (code 3) when the gate fails
A label whose F1 is undefined in the split (no positives) is reported as not scored, not as failed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf

from modlab.errors import ModlabError


class GateFailed(ModlabError):
    """The run finished and wrote its outputs, but the quality gate failed (exit code 3)."""

    exit_code = 3


def minimums(cfg, label_names: list[str]) -> dict[str, float]:
    """{label or 'macro': minimum F1}; empty when there is no gate. Unknown labels are a one-line error."""
    value = None if cfg is None else cfg.get("min_f1")
    if value is None:
        return {}
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(label_names) - {"macro"})
        if unknown:
            raise ModlabError(f"gate.min_f1 names {unknown}, which are not labels of this dataset "
                              f"({', '.join(label_names)}); use label names or 'macro'")
        out = {str(k): v for k, v in value.items() if v is not None}
    else:
        out = dict.fromkeys(label_names, value)
    for key, v in out.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= float(v) <= 1.0:
            raise ModlabError(f"gate.min_f1 for {key} must be a number in [0, 1], got {v!r}")
    return {k: float(v) for k, v in out.items()}


def evaluate(metrics: dict[str, float], label_names: list[str], cfg, split: str) -> dict | None:
    """The gate.json payload, or None when no gate is configured."""
    mins = minimums(cfg, label_names)
    if not mins:
        return None
    tuned = bool(cfg.get("tuned", True)) and f"{split}/f1_tuned/{label_names[0]}" in metrics
    metric = "f1_tuned" if tuned else "f1"
    rows: dict[str, dict] = {}
    for key, minimum in mins.items():
        name = f"{split}/{metric}_macro" if key == "macro" else f"{split}/{metric}/{key}"
        value = metrics.get(name, math.nan)
        scored = value is not None and not math.isnan(value)
        rows[key] = {"f1": value if scored else None, "min": minimum, "passed": (value >= minimum) if scored else None}
    failed = [k for k, r in rows.items() if r["passed"] is False]
    return {"passed": not failed, "split": split, "metric": metric, "failed": failed,
            "not_scored": [k for k, r in rows.items() if r["passed"] is None], "labels": rows}


def summary_line(result: dict) -> str:
    if result["passed"]:
        line = f"quality gate passed on {result['split']} ({result['metric']})"
    else:
        worst = ", ".join(f"{k} {result['labels'][k]['f1']:.3f} < {result['labels'][k]['min']:.2f}"
                          for k in result["failed"])
        line = f"quality gate failed on {result['split']} ({result['metric']}): {worst}"
    if result["not_scored"]:
        line += f"; not scored (no positives): {', '.join(result['not_scored'])}"
    return line


def enforce(result: dict | None, cfg) -> None:
    """Raise GateFailed (exit code 3) when the gate failed and `gate.fail` asks for it."""
    if result is not None and not result["passed"] and cfg is not None and cfg.get("fail", False):
        raise GateFailed(summary_line(result) + "; outputs were written (gate.fail=true)")
