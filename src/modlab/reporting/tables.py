"""The per-label table of an evaluation result (and its cell formats), shared by console, report and compare."""

from __future__ import annotations

import math
import re

COLUMNS = (("f1", "F1"), ("precision", "Precision"), ("recall", "Recall"), ("auroc", "ROC-AUC"), ("auprc", "PR-AUC"))
TUNED = (("threshold", "Thr"), ("f1_tuned", "F1@thr"), ("precision_tuned", "P@thr"), ("recall_tuned", "R@thr"))


def format_value(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def label_rows(result, compact: bool = False) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(header, per-label rows, summary rows) of a result's metrics."""
    metrics, labels, split, gate = result.metrics, list(result.label_names), result.split, result.gate
    tuned = [(k, t) for k, t in TUNED if f"{split}/{k}/{labels[0]}" in metrics
             or (k == "threshold" and f"val/threshold/{labels[0]}" in metrics)]
    if compact:
        tuned = [(k, t) for k, t in tuned if k in ("threshold", "f1_tuned")]
    header = ["label", "positives", *(t for _, t in COLUMNS), *(t for _, t in tuned)] + (["gate"] if gate else [])

    def value(key: str, name: str):
        return metrics.get(f"val/threshold/{name}") if key == "threshold" else metrics.get(f"{split}/{key}/{name}")

    body = []
    for name in labels:
        row = [name, f"{metrics.get(f'{split}/positives/{name}', 0):.0f}"]
        row += [format_value(value(k, name)) for k, _ in COLUMNS] + [format_value(value(k, name)) for k, _ in tuned]
        if gate:
            row.append(_gate_cell(gate["labels"].get(name)))
        body.append(row)
    summary = []
    for kind in ("macro", "micro"):
        row = [kind, ""] + [format_value(metrics.get(f"{split}/{k}_{kind}")) for k, _ in COLUMNS]
        row += ["" if k == "threshold" else format_value(metrics.get(f"{split}/{k}_{kind}")) for k, _ in tuned]
        if gate:
            row.append(_gate_cell(gate["labels"].get(kind)) if kind == "macro" else "")
        summary.append(row)
    if gate:
        summary.append(["gate overall"] + [""] * (len(header) - 2) + ["PASS" if gate["passed"] else "FAIL"])
    return header, body, summary


def _gate_cell(row: dict | None) -> str:
    if row is None:
        return ""
    return "n/a" if row["passed"] is None else ("pass" if row["passed"] else "FAIL")


def section_rows(section) -> tuple[list[str], list[list[str]]]:
    """A result section's table with numbers formatted like the per-label table."""
    rows = [[format_value(c) if isinstance(c, float) else str(c) for c in row] for row in section.rows]
    return list(section.header), rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(value) -> str:  # a bare | would split the cell ("mean |delta p|")
        return re.sub(r"(?<!\\)\|", r"\\|", str(value))

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
