"""report.md, figures and predictions.csv from hand-made predictions (no training)."""

import io

import numpy as np
import pandas as pd
from rich.console import Console

from modlab.evaluation.result import Predictions, evaluate
from modlab.reporting.console import label_table
from modlab.reporting.report import write_report
from modlab.rundir import RunDir

LABELS = ["toxic", "threat"]
PNG = b"\x89PNG\r\n\x1a\n"


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 2)) < 0.4).astype(np.float32)
    probs = np.clip(0.4 * labels + 0.6 * rng.random((n, 2)), 0, 1)
    labels[:, 1] = 0  # threat: no positives in this split
    ids = [f"row-{i}" for i in range(n)]
    texts = [f"text number {i} with a | pipe\nand a newline" for i in range(n)]
    return probs, labels, ids, texts


def thresholds(values):
    return {"thresholds": dict(zip(LABELS, values, strict=True)), "default": 0.5}


def result_of(probs, labels, ids, texts, threshold_values, gate, showcase=5):
    return evaluate(Predictions(probs, labels, tuple(ids), tuple(texts)), LABELS, "test",
                    thresholds=thresholds(threshold_values), gate=gate, showcase=showcase)


def test_report_has_tables_confusions_curves_and_confident_mistakes(tmp_path):
    probs, labels, ids, texts = data()
    result = result_of(probs, labels, ids, texts, [0.5, 0.5], {"min_f1": 0.9}, showcase=3)
    path = write_report(RunDir(tmp_path), result, title="Run report: x", info={"dataset": "synthetic"})
    text = path.read_text()
    for section in ("## Per-label metrics", "## Confusion matrices", "## Curves", "## Most confident mistakes",
                    "### toxic", "### threat", "figures/pr_curves.png", "figures/roc_curves.png",
                    "figures/confusion.png", "**FAIL**", "No curves for threat"):
        assert section in text, section
    for name in ("pr_curves.png", "roc_curves.png", "confusion.png"):
        assert (tmp_path / "figures" / name).read_bytes()[:8] == PNG
    # The most confident false positive of toxic is listed first, its text escaped onto one table row.
    negatives = np.flatnonzero((labels[:, 0] == 0) & (probs[:, 0] >= 0.5))
    worst = ids[negatives[np.argmax(probs[negatives, 0])]]
    toxic = text.split("### toxic")[1].split("### threat")[0]
    fp_rows = toxic.split("False positives")[1].split("False negatives")[0]
    assert fp_rows.split("\n| ")[2].split(" | ")[1] == worst
    assert "a \\| pipe and a newline" in toxic
    # Confusion counts add up to the split size.
    row = next(line for line in text.splitlines() if line.startswith("| toxic | 0.500 |"))
    assert sum(int(c) for c in row.strip("| ").split(" | ")[2:]) == len(ids)


def test_label_table_shows_tuned_columns_and_gate():
    probs, labels, *_ = data()
    result = result_of(probs, labels, [str(i) for i in range(len(probs))], ["t"] * len(probs), [0.4, 0.6],
                       {"min_f1": 0.1})
    out = io.StringIO()
    Console(file=out, width=200).print(label_table(result))
    text = out.getvalue()
    assert "F1@thr" in text and "gate" in text and "n/a" in text and "PASS" in text and "0.400" in text


def test_predictions_csv_has_ids_texts_and_probabilities(tmp_path):
    probs, labels, ids, texts = data(5)
    path = RunDir(tmp_path).write_predictions(ids, texts, probs, labels, LABELS)
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["id", "text", "prob_toxic", "prob_threat", "label_toxic", "label_threat"]
    assert frame["text"].tolist() == texts and np.allclose(frame[["prob_toxic", "prob_threat"]], probs, atol=1e-6)


def test_result_is_immutable_and_sections_reach_metrics_and_report(tmp_path):
    from modlab.evaluation.result import Section

    probs, labels, ids, texts = data()
    extra = Section(title="Extra judgement", metrics={"test/extra/score": 0.25}, header=("kind", "score"),
                    rows=(("a", 0.25),))
    result = evaluate(Predictions(probs, labels, tuple(ids), tuple(texts)), LABELS, "test",
                      sections={"extra": extra})
    assert result.metrics["test/extra/score"] == 0.25 and not result.tuned
    try:
        result.metrics["test/f1/toxic"] = 1.0
        raise AssertionError("metrics must be read-only")
    except TypeError:
        pass
    assert not result.predictions.probs.flags.writeable
    text = write_report(RunDir(tmp_path), result, title="x").read_text()
    assert "## Extra judgement" in text and "| a | 0.250 |" in text


def test_console_table_fits_80_columns_with_18_labels():
    from modlab.data.synthetic import TRUST_SAFETY_LABELS
    from modlab.reporting.console import print_result

    rng = np.random.default_rng(0)
    labels = (rng.random((100, 18)) < 0.3).astype(np.float32)
    probs = np.clip(0.5 * labels + 0.5 * rng.random((100, 18)), 0, 1)
    result = evaluate(Predictions(probs, labels, tuple(map(str, range(100))), ("t",) * 100), TRUST_SAFETY_LABELS,
                      "test", thresholds={"thresholds": dict.fromkeys(TRUST_SAFETY_LABELS, 0.4)}, gate={"min_f1": 0.5})
    console = Console(width=80, force_terminal=True, record=True, color_system=None)
    print_result(result, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    assert "violent_extremism" in text and "F1@thr" in text and "PASS" in text
