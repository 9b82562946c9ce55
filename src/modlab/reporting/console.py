"""The terminal view of an evaluation result: the per-label table (rich), one table per extra section."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from modlab.reporting.tables import label_rows, section_rows

SHORT = {"positives": "pos", "Precision": "P", "Recall": "R", "ROC-AUC": "ROC", "PR-AUC": "PR"}
AT_HALF = 7  # label, positives and the five metrics at 0.5: the first of the two narrow tables


def label_table(result, columns: slice = slice(None), short: bool = False, title: str | None = None) -> Table:
    header, body, summary = label_rows(result, compact=True)
    picked = list(range(len(header)))[columns]
    picked = picked if picked[0] == 0 else [0, *picked]
    table = Table(title=title or f"{result.split} metrics per label (F1/P/R at 0.5; @thr at the tuned thresholds)")
    for i in picked:
        table.add_column(SHORT.get(header[i], header[i]) if short else header[i], justify="left" if i == 0 else "right")
    for row in body:
        table.add_row(*(row[i] for i in picked))
    for row in summary:
        table.add_row(*(row[i] for i in picked), style="bold")
    return table


def print_result(result, console: Console | None = None) -> None:
    """The per-label table; on a terminal too narrow for it (18 labels in 80 columns), as two tables."""
    console = console or Console()
    table = label_table(result)
    if console.is_terminal and _natural_width(console, table) > console.width:
        console.print(label_table(result, slice(0, AT_HALF), short=True,
                                  title=f"{result.split} per label at 0.5 (P/R: precision/recall, ROC/PR: AUCs)"))
        console.print(label_table(result, slice(AT_HALF, None), title=f"{result.split} at the tuned thresholds"))
    else:
        print_wide(table, console)
    for section in result.sections.values():
        if section.rows:
            header, rows = section_rows(section)
            table = Table(title=f"{result.split}: {section.title}")
            for i, title in enumerate(header):
                table.add_column(title, justify="left" if i == 0 else "right")
            for row in rows:
                table.add_row(*row)
            print_wide(table, console)


def _natural_width(console: Console, table: Table) -> int:
    return console.measure(table, options=console.options.update_width(1000)).maximum


def print_wide(table: Table, console: Console | None = None) -> None:
    """Print a rich table; to logs and pipes as wide as it needs, nothing truncated."""
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, _natural_width(console, table))
    console.print(table)
