"""Render a scored run into its run dir, loggers and terminal: one call after evaluation, nothing computed.

Writes gate.json, predictions.csv, report.md (+ figures/) and metrics.json through `RunDir`, sends the
metrics the module did not log to every logger (tables and curves to W&B), and prints the per-label table.
"""

from __future__ import annotations

import logging

from modlab.evaluation.gate import summary_line
from modlab.reporting.console import print_result
from modlab.reporting.report import write_report
from modlab.rundir import RunDir
from modlab.tracking.loggers import log_results

log = logging.getLogger(__name__)


def render(run: RunDir, shown, metrics: dict[str, float], *, report_cfg=None, loggers=(), logged=(),
           info: dict | None = None, best: float | None = None, step: int = 0) -> None:
    """`shown`: the result the report, predictions and table are about; `metrics`: all of metrics.json."""
    report_cfg = report_cfg or {}
    if shown.gate is not None:
        run.write_gate(dict(shown.gate))
        (log.info if shown.gate["passed"] else log.warning)(summary_line(shown.gate))
    p = shown.predictions
    if len(p) and report_cfg.get("predictions", True):
        run.write_predictions(p.ids, p.texts, p.probs, p.labels, list(shown.label_names))
    figures = []
    if len(p) and report_cfg.get("enabled", True):
        path = write_report(run, shown, title=f"Run report: {run.path.name}", info=info)
        log.info("report: %s", path)
        figures = sorted(run.figures_dir.glob("*.png"))
    log_results(list(loggers), shown, metrics, set(logged), best=best, step=step, figures=figures)
    run.write_metrics(metrics)
    print_result(shown)
