"""Human-readable views of a run: the terminal table, predictions.csv and a Markdown report with figures.

report.md (in the run dir) holds the per-label table, per-label confusion matrices, PR and ROC curves
(figures/*.png) and the most confident false positives and false negatives per label.
"""

from __future__ import annotations

import math
from io import BytesIO
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from modlab.io import atomic_write_bytes, atomic_write_text

COLUMNS = (("f1", "F1"), ("precision", "Precision"), ("recall", "Recall"), ("auroc", "ROC-AUC"), ("auprc", "PR-AUC"))
TUNED = (("threshold", "Thr"), ("f1_tuned", "F1@thr"), ("precision_tuned", "P@thr"), ("recall_tuned", "R@thr"))
REPORT = "report.md"
FIGURES = "figures"
PREDICTIONS = "predictions.csv"


def fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _rows(metrics: dict[str, float], labels: list[str], split: str, gate: dict | None, compact: bool = False):
    """(header, per-label rows, summary rows) shared by the terminal and Markdown tables."""
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
        row += [fmt(value(k, name)) for k, _ in COLUMNS] + [fmt(value(k, name)) for k, _ in tuned]
        if gate:
            row.append(_gate_cell(gate["labels"].get(name)))
        body.append(row)
    summary = []
    for kind in ("macro", "micro"):
        row = [kind, ""] + [fmt(metrics.get(f"{split}/{k}_{kind}")) for k, _ in COLUMNS]
        row += ["" if k == "threshold" else fmt(metrics.get(f"{split}/{k}_{kind}")) for k, _ in tuned]
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


def label_table(metrics: dict[str, float], labels: list[str], split: str = "test", gate: dict | None = None) -> Table:
    header, body, summary = _rows(metrics, labels, split, gate, compact=True)
    table = Table(title=f"{split} metrics per label (F1/P/R at 0.5; @thr at the tuned thresholds)")
    for i, title in enumerate(header):
        table.add_column(title, justify="left" if i == 0 else "right")
    for row in body:
        table.add_row(*row)
    for row in summary:
        table.add_row(*row, style="bold")
    return table


def print_label_table(metrics: dict[str, float], labels: list[str], split: str = "test",
                      gate: dict | None = None) -> None:
    print_wide(label_table(metrics, labels, split, gate))


def print_wide(table: Table, console: Console | None = None) -> None:
    """Print a rich table; to logs and pipes as wide as it needs, nothing truncated."""
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, console.measure(table, options=console.options.update_width(1000)).maximum)
    console.print(table)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell_text(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("<", "&lt;")


def write_predictions(path: str | Path, ids: list[str], texts: list[str], probs: np.ndarray, labels: np.ndarray,
                      label_names: list[str]) -> Path:
    """One row per scored example: id, text, prob_<label> (and the reference label_<label>, -1 unknown)."""
    import pandas as pd

    frame = pd.DataFrame({"id": ids, "text": texts})
    for j, name in enumerate(label_names):
        frame[f"prob_{name}"] = np.round(probs[:, j].astype(np.float64), 6)
    for j, name in enumerate(label_names):
        frame[f"label_{name}"] = labels[:, j]
    return atomic_write_text(path, frame.to_csv(index=False))


def figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def save_figure(fig, path: str | Path) -> Path:
    """fig.savefig, written atomically (format from the suffix)."""
    buffer = BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png")
    return atomic_write_bytes(path, buffer.getvalue())


def plot_curves(curve_data: dict[str, dict], metrics: dict, split: str, path_pr: Path, path_roc: Path) -> None:
    for kind, path, (xlabel, ylabel), metric in (("pr", path_pr, ("recall", "precision"), "auprc"),
                                                 ("roc", path_roc, ("false positive rate", "true positive rate"),
                                                  "auroc")):
        fig = figure(6.5, 5)
        ax = fig.add_subplot()
        for color, (name, c) in zip(colors(len(curve_data)), curve_data.items(), strict=False):
            x, y = c[kind]
            area = metrics.get(f"{split}/{metric}/{name}")
            ax.plot(x, y, color=color, linewidth=1.5, label=f"{name} ({fmt(area)})",
                    drawstyle="steps-post" if kind == "pr" else "default")
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.02),
               title=f"{'Precision-recall' if kind == 'pr' else 'ROC'} curves per label ({split})")
        ax.grid(alpha=0.3)
        if curve_data:
            ax.legend(fontsize=8, loc="lower left" if kind == "pr" else "lower right")
        save_figure(fig, path)


def plot_confusions(counts: np.ndarray, label_names: list[str], path: Path) -> None:
    """A grid of 2x2 matrices (rows: true 0/1, columns: predicted 0/1)."""
    cols = min(4, len(label_names))
    rows = -(-len(label_names) // cols)
    fig = figure(2.4 * cols, 2.3 * rows)
    for j, name in enumerate(label_names):
        tp, fp, tn, fn = (int(v) for v in counts[j, :4])
        matrix = np.array([[tn, fp], [fn, tp]])
        ax = fig.add_subplot(rows, cols, j + 1)
        ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, matrix.max()))
        for (r, c), v in np.ndenumerate(matrix):
            ax.text(c, r, str(v), ha="center", va="center", color="white" if v > matrix.max() / 2 else "black")
        ax.set_xticks([0, 1], ["pred 0", "pred 1"], fontsize=8)
        ax.set_yticks([0, 1], ["true 0", "true 1"], fontsize=8)
        ax.set_title(name, fontsize=9)
    save_figure(fig, path)


def confident_mistakes(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, k: int) -> dict[int, dict]:
    """Per label index: {'fp': indices of the k highest-probability negatives predicted positive,
    'fn': indices of the k lowest-probability positives predicted negative}."""
    from modlab.metrics import binarize, metric_targets  # torch: only when a report is written

    targets = metric_targets(labels).numpy()
    decisions = binarize(probs, thresholds)
    out = {}
    for j in range(probs.shape[1]):
        fp = np.flatnonzero((targets[:, j] == 0) & (decisions[:, j] == 1))
        fn = np.flatnonzero((targets[:, j] == 1) & (decisions[:, j] == 0))
        out[j] = {"fp": fp[np.argsort(-probs[fp, j], kind="stable")][:k],
                  "fn": fn[np.argsort(probs[fn, j], kind="stable")][:k]}
    return out


def write_report(output_dir: str | Path, *, title: str, metrics: dict[str, float], label_names: list[str],
                 split: str, probs: np.ndarray, labels: np.ndarray, ids: list[str], texts: list[str],
                 thresholds: np.ndarray | None, gate: dict | None = None, info: dict | None = None,
                 showcase: int = 5, curve_data: dict | None = None) -> Path:
    """report.md + figures/{pr_curves,roc_curves,confusion}.png in `output_dir`; returns the report's path."""
    from modlab.metrics import binarize, curves, metric_targets, stat_scores

    output_dir = Path(output_dir)
    figures = output_dir / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    operating = np.full(len(label_names), 0.5) if thresholds is None else np.asarray(thresholds)
    op_name = "the tuned thresholds" if thresholds is not None else "0.5"

    curve_data = curves(probs, labels, label_names) if curve_data is None else curve_data
    plot_curves(curve_data, metrics, split, figures / "pr_curves.png", figures / "roc_curves.png")
    counts = stat_scores(binarize(probs, operating), metric_targets(labels).numpy())
    plot_confusions(counts, label_names, figures / "confusion.png")

    parts = [f"# {title}", ""]
    for key, value in (info or {}).items():
        parts.append(f"- **{key}**: {value}")
    parts += [f"- **scored split**: {split} ({len(probs)} rows)", ""]
    if gate:
        from modlab.gate import summary_line

        parts += [f"**{'PASS' if gate['passed'] else 'FAIL'}**: {summary_line(gate)}", ""]
    header, body, summary = _rows(metrics, label_names, split, gate)
    parts += ["## Per-label metrics", "",
              "F1 / precision / recall at 0.5; `@thr` at the per-label thresholds tuned on the validation split; "
              "`-` is undefined (a single class in the split), left out of the macro average.", "",
              markdown_table(header, body + [[f"**{c}**" if c else c for c in row] for row in summary]), ""]
    cm_rows = [[name, f"{operating[j]:.3f}", *(int(v) for v in counts[j, :4])] for j, name in enumerate(label_names)]
    parts += [f"## Confusion matrices (at {op_name})", "",
              markdown_table(["label", "threshold", "TP", "FP", "TN", "FN"], cm_rows), "",
              f"![confusion matrices]({FIGURES}/confusion.png)", "",
              "## Curves", "", f"![precision-recall curves]({FIGURES}/pr_curves.png)",
              f"![ROC curves]({FIGURES}/roc_curves.png)", ""]
    missing = [n for n in label_names if n not in curve_data]
    if missing:
        parts += [f"No curves for {', '.join(missing)}: a single class in this split.", ""]
    if showcase > 0:
        parts += [f"## Most confident mistakes (at {op_name})", ""]
        mistakes = confident_mistakes(probs, labels, operating, showcase)
        for j, name in enumerate(label_names):
            parts += [f"### {name}", ""]
            for kind, what in (("fp", "False positives (not labelled, highest probability)"),
                               ("fn", "False negatives (labelled, lowest probability)")):
                rows = [[f"{probs[i, j]:.3f}", _cell_text(ids[i], 40), _cell_text(texts[i])] for i in mistakes[j][kind]]
                parts += [f"{what}:", "", markdown_table(["p", "id", "text"], rows) if rows else "_none_", ""]
    path = output_dir / REPORT
    atomic_write_text(path, "\n".join(parts))
    return path
