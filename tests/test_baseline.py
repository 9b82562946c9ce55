"""`modlab baseline tfidf`: a full run dir on the transformer run's splits, listed by `modlab compare`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import JIGSAW_SAMPLE
from sklearn.metrics import roc_auc_score

from modlab.baseline import tfidf
from modlab.cli import main
from modlab.rundir import RunDir

FILES = ("config.yaml", "splits.json", "thresholds.json", "metrics.json", "predictions.csv", "report.md")


def check_run(run: RunDir, labels: list[str]) -> dict:
    for name in FILES:
        assert run.file(name).is_file(), name
    metrics = run.read_metrics()
    for label in labels:
        assert 0.0 <= metrics[f"test/auroc/{label}"] <= 1.0 or np.isnan(metrics[f"test/auroc/{label}"])
        assert f"val/threshold/{label}" in metrics
    cfg = run.read_config()
    assert cfg.backbone.name == "tfidf-logreg" and list(cfg.labels) == labels and "dataset" in cfg and "data" in cfg
    return metrics


def test_synthetic_run_dir_with_folds_is_compared(tmp_path, capsys):
    assert main(["baseline", "tfidf", "dataset.reader.size=300", "data.folds=3", "data.fold=1",
                 "report.showcase=0"]) == 0
    (run_path,) = (tmp_path / "outputs" / "baseline" / "runs").iterdir()
    run = RunDir(run_path)
    labels = list(run.read_config().labels)
    metrics = check_run(run, labels)
    assert metrics["test/auroc_macro"] > 0.8  # synthetic labels are learnable from words
    saved = json.loads(run.file("splits.json").read_text())
    assert saved["folds"] == {"k": 3, "fold": 1, "seed": 42}
    # the same rows as a transformer run with this config (same DataModule, no tokenizer)
    dm = tfidf.read_splits(tfidf.compose_config(["dataset.reader.size=300", "data.folds=3", "data.fold=1"]), None)
    assert saved["val"] == [dm.table.ids[i] for i in dm.rows["val"]]
    capsys.readouterr()
    assert main(["compare", str(run_path), "--no-plot"]) == 0
    assert "tfidf-logreg" in capsys.readouterr().out


def test_a_label_with_one_class_in_train_predicts_its_prior():
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]] * 10, dtype=np.float32)
    texts = ["you idiot fool", "have a nice day", "idiot idiot", "lovely weather today"] * 10
    probs = tfidf.fit_predict(texts, labels, {"val": ["idiot", "nice day"]})["val"]
    assert probs[0, 0] > probs[1, 0]
    np.testing.assert_array_equal(probs[:, 1], 0.0)


@pytest.mark.skipif(not JIGSAW_SAMPLE.is_dir(), reason="the shared Jigsaw sample is not there")
def test_jigsaw_sample(tmp_path):
    run = tfidf.run(["dataset=jigsaw", f"dataset.path={JIGSAW_SAMPLE}"])
    assert run.path.parent == tmp_path / "outputs" / "baseline" / "runs"
    metrics = check_run(run, ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"])
    assert metrics["test/auroc/toxic"] > 0.9


def test_refit_scores_test_with_a_fit_on_train_and_val(tmp_path):
    """refit=true as in train.py: val (and the thresholds) from the fit on train, test from a fit on train + val."""
    base = ["dataset.reader.size=300", "report.showcase=0"]
    plain = tfidf.run(base).read_metrics()
    refit = tfidf.run([*base, "refit=true"]).read_metrics()
    assert {k: v for k, v in refit.items() if k.startswith("val/")} == {k: v for k, v in plain.items()
                                                                        if k.startswith("val/")}
    dm = tfidf.read_splits(tfidf.compose_config(base), None)
    both = np.sort(np.concatenate([dm.rows["train"], dm.rows["val"]]))
    assert refit["refit/train_rows"] == len(both) == len(dm.rows["train"]) + len(dm.rows["val"])
    expected = tfidf.fit_predict([dm.table.texts[i] for i in both], dm.table.labels[both],
                                 {"test": [dm.table.texts[i] for i in dm.rows["test"]]})["test"]
    label = dm.label_names[0]
    assert refit[f"test/auroc/{label}"] == pytest.approx(roc_auc_score(dm.table.labels[dm.rows["test"], 0] >= 0.5,
                                                                       expected[:, 0]), abs=1e-6)
    # refit_epochs (no selection fit): no val scores, test from train + val
    fixed = tfidf.run([*base, "refit=true", "refit_epochs=1", "optimized_metric=test/auroc_macro"]).read_metrics()
    assert not any(k.startswith("val/") for k in fixed) and fixed[f"test/auroc/{label}"] == refit[f"test/auroc/{label}"]
