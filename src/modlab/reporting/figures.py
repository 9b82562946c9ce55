"""Figures: matplotlib without pyplot (no global state, no GUI backend), saved atomically.

The report's curves and confusion matrices, and the helpers `modlab compare` draws with.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np

from modlab.io import atomic_write_bytes
from modlab.reporting.tables import format_value


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
            ax.plot(x, y, color=color, linewidth=1.5, label=f"{name} ({format_value(area)})",
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
