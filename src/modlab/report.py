"""Human-readable views of a run's metrics."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

COLUMNS = (("f1", "F1"), ("precision", "Precision"), ("recall", "Recall"), ("auroc", "ROC-AUC"), ("auprc", "PR-AUC"))


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def label_table(metrics: dict[str, float], labels: list[str], split: str = "test") -> Table:
    table = Table(title=f"{split} metrics per label")
    table.add_column("label")
    for _, title in COLUMNS:
        table.add_column(title, justify="right")
    table.add_column("positives", justify="right")
    for name in labels:
        row = [_fmt(metrics.get(f"{split}/{key}/{name}")) for key, _ in COLUMNS]
        table.add_row(name, *row, f"{metrics.get(f'{split}/positives/{name}', 0):.0f}")
    table.add_row("macro", *[_fmt(metrics.get(f"{split}/{key}_macro")) for key, _ in COLUMNS], "", style="bold")
    return table


def print_label_table(metrics: dict[str, float], labels: list[str], split: str = "test") -> None:
    Console().print(label_table(metrics, labels, split))
