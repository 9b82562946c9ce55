"""report.md and figures/ of a run dir, rendered from an evaluation result (nothing is computed here).

The report holds the per-label table, per-label confusion matrices, PR and ROC curves, any extra sections
of the result, and the most confident false positives and false negatives per label.
"""

from __future__ import annotations

from pathlib import Path

from modlab.reporting.figures import plot_bars, plot_confusions, plot_curves
from modlab.reporting.tables import label_rows, markdown_table, section_rows
from modlab.rundir import FIGURES, RunDir


def _cell_text(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("<", "&lt;")


def write_report(run: RunDir, result, *, title: str, info: dict | None = None) -> Path:
    """report.md + figures/{pr_curves,roc_curves,confusion}.png in the run dir; returns the report's path."""
    names, split, counts, operating = list(result.label_names), result.split, result.confusion, result.operating
    probs, ids, texts = result.predictions.probs, result.predictions.ids, result.predictions.texts
    op_name = "the tuned thresholds" if result.tuned else "0.5"
    run.figures_dir.mkdir(parents=True, exist_ok=True)
    plot_curves(result, run.figures_dir / "pr_curves.png", run.figures_dir / "roc_curves.png")
    plot_confusions(counts, names, run.figures_dir / "confusion.png", operating)

    parts = [f"# {title}", ""]
    for key, value in (info or {}).items():
        parts.append(f"- **{key}**: {value}")
    parts += [f"- **scored split**: {split} ({len(probs)} rows)", ""]
    if result.gate:
        from modlab.evaluation.gate import summary_line

        parts += [f"**{'PASS' if result.gate['passed'] else 'FAIL'}**: {summary_line(result.gate)}", ""]
    header, body, summary = label_rows(result)
    parts += ["## Per-label metrics", "",
              "F1 / precision / recall at 0.5; `@thr` at the per-label thresholds tuned on the validation split; "
              "`-` is undefined (a single class in the split), left out of the macro average.", "",
              markdown_table(header, body + [[f"**{c}**" if c else c for c in row] for row in summary]), ""]
    cm_rows = [[name, f"{operating[j]:.3f}", *(int(v) for v in counts[j, :4])] for j, name in enumerate(names)]
    parts += [f"## Confusion matrices (at {op_name})", "",
              markdown_table(["label", "threshold", "TP", "FP", "TN", "FN"], cm_rows), "",
              f"![confusion matrices]({FIGURES}/confusion.png)", "",
              "## Curves", "", f"![precision-recall curves]({FIGURES}/pr_curves.png)",
              f"![ROC curves]({FIGURES}/roc_curves.png)", ""]
    missing = [n for n in names if n not in result.curves]
    if missing:
        parts += [f"No curves for {', '.join(missing)}: a single class in this split.", ""]
    for key, section in result.sections.items():
        parts += [f"## {section.title}", ""] + ([section.note, ""] if section.note else [])
        if section.rows:
            parts += [markdown_table(*section_rows(section)), ""]
        if section.bars:
            plot_bars(dict(section.bars), section.bars_label, f"{section.title} ({split})",
                      run.figures_dir / f"{key}.png")
            parts += [f"![{section.title}]({FIGURES}/{key}.png)", ""]
    if result.mistakes:  # empty when report.showcase=0
        parts += [f"## Most confident mistakes (at {op_name})", ""]
        for j, name in enumerate(names):
            parts += [f"### {name}", ""]
            for kind, what in (("fp", "False positives (not labelled, highest probability)"),
                               ("fn", "False negatives (labelled, lowest probability)")):
                rows = [[f"{probs[i, j]:.3f}", _cell_text(ids[i], 40), _cell_text(texts[i])]
                        for i in result.mistakes[j][kind]]
                parts += [f"{what}:", "", markdown_table(["p", "id", "text"], rows) if rows else "_none_", ""]
    return run.write_report("\n".join(parts))
