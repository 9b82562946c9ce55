"""Quality gate: minimum F1 per label (or one minimum for every label), pass/fail per label and overall.

Config `gate`:
  min_f1: null | 0.6 | {toxic: 0.7, threat: 0.4, macro: 0.6}   (`macro` gates the macro average)
  tuned: true    judge F1 at the tuned thresholds when there are some, else at 0.5
  fail: false    after writing every output, exit non-zero (code 3) when the gate fails
  at_least: {test/bias/final: 0.9}                       any metric key of the scored split: a minimum
  at_most: {test/robust/leetspeak/evasion_rate: 0.2}     ... or a maximum (rates, FPRs)
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


def bounds(cfg, split: str) -> dict[str, tuple[str, float]]:
    """{metric key: ('min' | 'max', bound)} from gate.at_least / gate.at_most; keys must be of `split`."""
    out: dict[str, tuple[str, float]] = {}
    for field, kind in (("at_least", "min"), ("at_most", "max")):
        value = None if cfg is None else cfg.get(field)
        if not value:
            continue
        if isinstance(value, DictConfig):
            value = OmegaConf.to_container(value, resolve=True)
        if not isinstance(value, Mapping):
            raise ModlabError(f"gate.{field} must map metric keys to bounds, e.g. gate.{field}="
                              f"'{{{split}/bias/final: 0.9}}', got {value!r}")
        for key, bound in value.items():
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise ModlabError(f"gate.{field} for {key} must be a number, got {bound!r}")
            out[str(key)] = (kind, float(bound))
    return out


def evaluate(metrics: dict[str, float], label_names: list[str], cfg, split: str) -> dict | None:
    """The gate.json payload, or None when no gate is configured."""
    mins, limits = minimums(cfg, label_names), bounds(cfg, split)
    if not mins and not limits:
        return None
    tuned = bool(cfg.get("tuned", True)) and f"{split}/f1_tuned/{label_names[0]}" in metrics
    metric = "f1_tuned" if tuned else "f1"
    rows: dict[str, dict] = {}
    for key, minimum in mins.items():
        name = f"{split}/{metric}_macro" if key == "macro" else f"{split}/{metric}/{key}"
        value = metrics.get(name, math.nan)
        scored = value is not None and not math.isnan(value)
        rows[key] = {"f1": value if scored else None, "min": minimum, "passed": (value >= minimum) if scored else None}
    checks: dict[str, dict] = {}
    for key, (kind, bound) in limits.items():
        if key not in metrics:
            known = sorted(k for k in metrics if k.startswith(f"{split}/"))[:8]
            raise ModlabError(f"gate bound on {key!r}: the scored split has no such metric (e.g. "
                              f"{', '.join(known)}); use a key of {split}'s metrics.json entries")
        value = metrics[key]
        scored = value is not None and not math.isnan(value)
        checks[key] = {"value": value if scored else None, kind: bound,
                       "passed": ((value >= bound) if kind == "min" else (value <= bound)) if scored else None}
    failed = [k for k, r in rows.items() if r["passed"] is False] + [k for k, r in checks.items()
                                                                      if r["passed"] is False]
    return {"passed": not failed, "split": split, "metric": metric, "failed": failed,
            "not_scored": [k for k, r in {**rows, **checks}.items() if r["passed"] is None], "labels": rows,
            "metrics": checks}


def summary_line(result: dict) -> str:
    if result["passed"]:
        line = f"quality gate passed on {result['split']} ({result['metric']})"
    else:
        worst = ", ".join(_failure(result, k) for k in result["failed"])
        line = f"quality gate failed on {result['split']} ({result['metric']}): {worst}"
    if result["not_scored"]:
        line += f"; not scored (no positives): {', '.join(result['not_scored'])}"
    return line


def _failure(result: dict, key: str) -> str:
    if key in result["labels"]:
        row = result["labels"][key]
        return f"{key} {row['f1']:.3f} < {row['min']:.2f}"
    row = result.get("metrics", {})[key]
    return f"{key} {row['value']:.3f} {'<' if 'min' in row else '>'} {row.get('min', row.get('max')):.3f}"


def enforce(result: dict | None, cfg) -> None:
    """Raise GateFailed (exit code 3) when the gate failed and `gate.fail` asks for it."""
    if result is not None and not result["passed"] and cfg is not None and cfg.get("fail", False):
        raise GateFailed(summary_line(result) + "; outputs were written (gate.fail=true)")
