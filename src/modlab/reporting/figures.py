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


def plot_curves(result, path_pr: Path, path_roc: Path) -> None:
    """Per-label PR and ROC curves of a result, each with its operating point (the threshold used) marked;
    PR curves with each label's prevalence (a random ranking's precision) as a dashed baseline."""
    metrics, split, counts = result.metrics, result.split, result.confusion
    names = list(result.label_names)
    for kind, path, (xlabel, ylabel), metric in (("pr", path_pr, ("recall", "precision"), "auprc"),
                                                 ("roc", path_roc, ("false positive rate", "true positive rate"),
                                                  "auroc")):
        fig = figure(8.5, 5)
        ax = fig.add_subplot()
        palette = dict(zip(names, colors(len(names)), strict=True))
        for name, c in result.curves.items():
            x, y = c[kind]
            color, j = palette[name], names.index(name)
            area = metrics.get(f"{split}/{metric}/{name}")
            ax.plot(x, y, color=color, linewidth=1.5, label=f"{name} ({format_value(area)})",
                    drawstyle="steps-post" if kind == "pr" else "default")
            tp, fp, tn, fn = (float(v) for v in counts[j, :4])
            recall = tp / max(tp + fn, 1.0)
            if kind == "pr":
                ax.axhline((tp + fn) / max(tp + fp + tn + fn, 1.0), color=color, linestyle="--", linewidth=0.8,
                           alpha=0.6)
                point = (recall, tp / (tp + fp) if tp + fp else 1.0)
            else:
                point = (fp / max(fp + tn, 1.0), recall)
            ax.plot(*point, marker="o", markersize=6, color=color, markeredgecolor="black")
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        at = "the tuned thresholds" if result.tuned else "0.5"
        note = "dots: decisions at " + at + ("; dashed: prevalence" if kind == "pr" else "")
        ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.02),
               title=f"{'Precision-recall' if kind == 'pr' else 'ROC'} curves per label ({split}; {note})")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
        if result.curves:  # outside the axes: a legend never covers the curves
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        save_figure(fig, path)


def plot_confusions(counts: np.ndarray, label_names: list[str], path: Path, thresholds: np.ndarray) -> None:
    """A grid of 2x2 matrices (rows: true 0/1, columns: predicted 0/1), each with its colour scale and the
    threshold its decisions were made at."""
    cols = min(4, len(label_names))
    rows = -(-len(label_names) // cols)
    fig = figure(3.0 * cols, 2.4 * rows)
    for j, name in enumerate(label_names):
        tp, fp, tn, fn = (int(v) for v in counts[j, :4])
        matrix = np.array([[tn, fp], [fn, tp]])
        ax = fig.add_subplot(rows, cols, j + 1)
        image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, matrix.max()))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
        for (r, c), v in np.ndenumerate(matrix):
            ax.text(c, r, str(v), ha="center", va="center", color="white" if v > matrix.max() / 2 else "black")
        ax.set_xticks([0, 1], ["pred 0", "pred 1"], fontsize=8)
        ax.set_yticks([0, 1], ["true 0", "true 1"], fontsize=8)
        ax.set_title(f"{name} (p >= {thresholds[j]:.3f})", fontsize=9)
    save_figure(fig, path)


def plot_bars(values: dict[str, float], xlabel: str, title: str, path: Path) -> None:
    """Horizontal bars, one per name (a result section's figure), NaN drawn as missing."""
    names = list(values)
    fig = figure(6.5, 0.9 + 0.35 * len(names))
    ax = fig.add_subplot()
    heights = [0.0 if np.isnan(values[n]) else values[n] for n in names]
    ax.barh(range(len(names)), heights, color=colors(len(names)))
    for i, n in enumerate(names):
        ax.text(min(heights[i], 0.98), i, f" {format_value(values[n])}", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.05), xlabel=xlabel, title=title)
    ax.title.set_fontsize(9)
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)
