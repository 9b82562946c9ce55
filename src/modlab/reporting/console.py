"""The terminal view of an evaluation result: the per-label table (rich), one table per extra section."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from modlab.reporting.tables import label_rows, section_rows


def label_table(result) -> Table:
    header, body, summary = label_rows(result, compact=True)
    table = Table(title=f"{result.split} metrics per label (F1/P/R at 0.5; @thr at the tuned thresholds)")
    for i, title in enumerate(header):
        table.add_column(title, justify="left" if i == 0 else "right")
    for row in body:
        table.add_row(*row)
    for row in summary:
        table.add_row(*row, style="bold")
    return table


def print_result(result, console: Console | None = None) -> None:
    console = console or Console()
    print_wide(label_table(result), console)
    for section in result.sections.values():
        if section.rows:
            header, rows = section_rows(section)
            table = Table(title=f"{result.split}: {section.title}")
            for i, title in enumerate(header):
                table.add_column(title, justify="left" if i == 0 else "right")
            for row in rows:
                table.add_row(*row)
            print_wide(table, console)


def print_wide(table: Table, console: Console | None = None) -> None:
    """Print a rich table; to logs and pipes as wide as it needs, nothing truncated."""
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, console.measure(table, options=console.options.update_width(1000)).maximum)
    console.print(table)
