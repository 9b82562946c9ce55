"""After a model has been scored on val/test: thresholds -> tuned metrics -> gate -> outputs -> loggers -> table.

Shared by `modlab.train.run` (val + test of the best checkpoint) and `modlab.eval.run` (one dataset).
Config blocks: `thresholds`, `gate`, `report` (see conf/train.yaml).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from modlab import gate as gate_mod
from modlab import thresholds as thr
from modlab.io import write_json
from modlab.metrics import curves, threshold_scores
from modlab.report import PREDICTIONS, print_label_table, write_predictions, write_report
from modlab.tracking import log_run_results

log = logging.getLogger(__name__)


def check_config(cfg, label_names: list[str]) -> None:
    """Fail before any training on a bad `thresholds` or `gate` block (one-line ModlabError)."""
    t = cfg.get("thresholds") or {}
    if t.get("tune", True):
        thr.check_config(t.get("objective", "f1"), t.get("target"))
    gate_mod.minimums(cfg.get("gate"), label_names)


def finish(cfg, *, output_dir: str | Path, label_names: list[str], metrics: dict[str, float],
           predictions: dict[str, dict], table, loggers: list, report_split: str, thresholds: dict | None = None,
           best: float | None = None, step: int = 0, info: dict | None = None) -> tuple[dict, dict | None]:
    """Add tuned-threshold metrics to `metrics`, write thresholds.json / gate.json / predictions.csv / report.md /
    metrics.json, log the results and print the per-label table; returns (metrics, gate result or None).

    predictions: {split: {'probs', 'labels', 'rows'}} as gathered by the module; `rows` index `table`.
    thresholds: a thresholds.json payload to apply; None: tune on predictions['val'] when configured.
    """
    output_dir = Path(output_dir)
    tcfg = cfg.get("thresholds") or {}
    before = dict(metrics)
    if thresholds is None and tcfg.get("tune", True) and predictions.get("val"):
        val = predictions["val"]
        thresholds = thr.tune(val["probs"], val["labels"], label_names, tcfg.get("objective", "f1"),
                              tcfg.get("target"), tcfg.get("default", 0.5))
        thr.save(output_dir / thr.FILENAME, thresholds)
    operating = None
    if thresholds is not None:
        operating = thr.as_array(thresholds, label_names)
        metrics.update(thr.as_metrics(thresholds, label_names))
        for split, p in predictions.items():
            if p:
                metrics.update(threshold_scores(p["probs"], p["labels"], operating, label_names, split))

    gate = gate_mod.evaluate(metrics, label_names, cfg.get("gate"), report_split)
    gate_mod.save(output_dir, gate)
    if gate is not None:
        (log.info if gate["passed"] else log.warning)(gate_mod.summary_line(gate))

    scored = predictions.get(report_split) or {}
    curve_data = None
    rcfg = cfg.get("report") or {}
    if scored:
        ids = [table.ids[i] for i in scored["rows"]]
        texts = [table.texts[i] for i in scored["rows"]]
        if rcfg.get("predictions", True):
            write_predictions(output_dir / PREDICTIONS, ids, texts, scored["probs"], scored["labels"], label_names)
        curve_data = curves(scored["probs"], scored["labels"], label_names)
        if rcfg.get("enabled", True):
            path = write_report(output_dir, title=f"Run report: {output_dir.name}", metrics=metrics,
                                label_names=label_names, split=report_split, probs=scored["probs"],
                                labels=scored["labels"], ids=ids, texts=texts, thresholds=operating, gate=gate,
                                info=info, showcase=int(rcfg.get("showcase", 5)), curve_data=curve_data)
            log.info("report: %s", path)

    new = {k: v for k, v in metrics.items() if k not in before}
    log_run_results(loggers, split=report_split, metrics=metrics, new_metrics=new, label_names=label_names,
                    curve_data=curve_data, gate=gate, best=best, step=step)
    write_json(output_dir / "metrics.json", metrics)
    print_label_table(metrics, label_names, report_split, gate)
    return metrics, gate


def gather(module, splits) -> dict[str, dict[str, np.ndarray]]:
    """The predictions a ModerationClassifier kept from its last val/test epochs, one per table row."""
    return {split: module.collected.get(split) or {} for split in splits}
