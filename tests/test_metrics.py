"""Per-label metrics, threshold tuning and the quality gate, on small hand-made arrays (no training)."""

import json
import logging
import math

import numpy as np
import pytest
import torch

from modlab.errors import ModlabError
from modlab.evaluation import gate, thresholds
from modlab.evaluation.metrics import (
    PredictionStore,
    binarize,
    build_metrics,
    compute,
    flatten,
    metric_targets,
    threshold_scores,
)
from modlab.rundir import RunDir

LABELS = ["toxic", "threat", "insult"]


def scored(probs, labels, split="val"):
    metrics = build_metrics(len(LABELS))
    metrics.update(torch.tensor(probs, dtype=torch.float32), metric_targets(torch.tensor(labels, dtype=torch.float32)))
    return flatten(compute(metrics), LABELS, split)


def f1_at(probs, targets, t):
    """Reference F1 of one label, decisions p >= t, rows with target -1 dropped."""
    keep = targets >= 0
    pred, true = probs[keep] >= t, targets[keep] >= 0.5
    tp, fp, fn = (pred & true).sum(), (pred & ~true).sum(), (~pred & true).sum()
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def test_per_label_macro_micro_keys_and_values():
    probs = [[0.9, 0.2, 0.6], [0.8, 0.1, 0.7], [0.3, 0.7, 0.2], [0.1, 0.1, 0.3]]
    labels = [[1, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    out = scored(probs, labels)
    for metric in ("f1", "precision", "recall", "auroc", "auprc"):
        assert {f"val/{metric}/{n}" for n in LABELS} | {f"val/{metric}_macro", f"val/{metric}_micro"} <= set(out)
    assert out["val/f1/toxic"] == pytest.approx(1.0) and out["val/auroc/toxic"] == pytest.approx(1.0)
    assert out["val/precision/insult"] == pytest.approx(1 / 2) and out["val/recall/insult"] == pytest.approx(1 / 2)
    # micro pools every (row, label) cell: tp=4 (toxic x2, threat, insult), fp=1, fn=1
    assert out["val/f1_micro"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))
    assert out["val/f1_macro"] == pytest.approx(np.mean([out[f"val/f1/{n}"] for n in LABELS]))
    assert out["val/positives/toxic"] == 2


def test_single_class_labels_are_nan_and_left_out_of_the_macro(caplog):
    probs = [[0.9, 0.2, 0.6], [0.2, 0.3, 0.3], [0.6, 0.1, 0.8]]
    labels = [[1, 0, 1], [0, 0, 1], [1, 0, 1]]  # threat: no positives; insult: no negatives
    with caplog.at_level(logging.INFO, logger="modlab.evaluation.metrics"):
        out = scored(probs, labels, split="test")
        scored(probs, labels, split="test")
    for metric in ("f1", "precision", "recall", "auroc", "auprc"):
        assert math.isnan(out[f"test/{metric}/threat"])  # nothing to detect
    assert math.isnan(out["test/auroc/insult"]) and math.isnan(out["test/auprc/insult"])
    assert out["test/f1/insult"] == pytest.approx(2 * 2 / (2 * 2 + 1))  # at 0.5: 0.6 and 0.8 found, 0.3 missed
    assert out["test/auroc_macro"] == pytest.approx(out["test/auroc/toxic"])
    assert out["test/f1_macro"] == pytest.approx((out["test/f1/toxic"] + out["test/f1/insult"]) / 2)
    notes = [r for r in caplog.records if "single class" in r.getMessage()]
    assert len(notes) == 1 and "threat" in notes[0].getMessage() and "insult" in notes[0].getMessage()


def test_unknown_targets_are_ignored():
    probs = [[0.9, 0.2, 0.6], [0.8, 0.9, 0.1], [0.1, 0.7, 0.2], [0.7, 0.1, 0.9]]
    full = scored(probs, [[1, 0, 1], [-1, -1, -1], [0, 1, 0], [0, 0, 1]])
    dropped = scored([probs[0], probs[2], probs[3]], [[1, 0, 1], [0, 1, 0], [0, 0, 1]])
    assert full == pytest.approx(dropped, nan_ok=True)


def test_metrics_accumulate_over_the_epoch_not_averaged_per_batch():
    rng = np.random.default_rng(0)
    probs = rng.random((40, 3)).astype(np.float32)
    labels = (rng.random((40, 3)) < 0.4).astype(np.float32)
    metrics = build_metrics(3)
    per_batch = []
    for chunk in (slice(0, 10), slice(10, 40)):
        batch = build_metrics(3)
        for m in (metrics, batch):
            m.update(torch.from_numpy(probs[chunk]), metric_targets(torch.from_numpy(labels[chunk])))
        per_batch.append(flatten(batch.compute(), LABELS, "val")["val/auroc/toxic"])
    epoch = flatten(metrics.compute(), LABELS, "val")
    assert epoch == pytest.approx(scored(probs, labels), nan_ok=True)
    assert epoch["val/auroc/toxic"] != pytest.approx(np.mean(per_batch))


def test_threshold_scores_use_per_label_thresholds():
    probs = np.array([[0.9, 0.2, 0.6], [0.4, 0.35, 0.4], [0.3, 0.7, 0.2], [0.1, 0.1, 0.9]])
    labels = np.array([[1, 0, 1], [1, 1, -1], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    t = np.array([0.4, 0.3, 0.5])
    out = threshold_scores(probs, labels, t, LABELS, "test")
    for j, name in enumerate(LABELS):
        assert out[f"test/f1_tuned/{name}"] == pytest.approx(f1_at(probs[:, j], labels[:, j], t[j]))
    assert out["test/f1_tuned/toxic"] == pytest.approx(1.0)  # 0.4 >= 0.4 counts as positive
    assert {"test/f1_tuned_macro", "test/f1_tuned_micro", "test/precision_tuned/threat", "test/recall_tuned_micro"} <= set(out)
    assert binarize(probs, t)[1].tolist() == [1, 1, 0]


def test_prediction_store_keeps_rows_and_raw_labels_once_each():
    store = PredictionStore()
    assert store.compute() == {}
    store.update(torch.tensor([[0.1, 0.9]]), torch.tensor([[0.0, -1.0]]), torch.tensor([7]))
    store.update(torch.tensor([[0.6, 0.2], [0.1, 0.9]]), torch.tensor([[0.7, 1.0], [0.0, -1.0]]),
                 torch.tensor([3, 7]))  # row 7 again, as DistributedSampler pads an uneven split
    out = store.compute()
    assert out["rows"].tolist() == [3, 7] and out["labels"][1, 1] == -1 and out["probs"].shape == (2, 2)
    assert out["probs"][0].tolist() == pytest.approx([0.6, 0.2])
    store.probs, store.labels, store.rows = (torch.cat(getattr(store, k)) for k in ("probs", "labels", "rows"))
    assert store.compute()["rows"].tolist() == [3, 7]  # states as a DDP sync leaves them: one tensor each


# --------------------------------------------------------------------------------------------- thresholds

def noisy(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 2)) < 0.3).astype(np.float32)
    probs = np.clip(0.35 * labels + 0.65 * rng.random((n, 2)), 0, 1).astype(np.float32)
    labels[:5, 1] = -1
    return probs, labels


def test_tuned_threshold_maximizes_f1():
    probs, labels = noisy()
    payload = thresholds.tune(probs, labels, ["a", "b"])
    for j, name in enumerate(["a", "b"]):
        best = max(f1_at(probs[:, j], labels[:, j], t) for t in np.unique(probs[:, j]))
        chosen = payload["thresholds"][name]
        assert f1_at(probs[:, j], labels[:, j], chosen) == pytest.approx(best, abs=1e-6)
        assert payload["details"][name]["f1"] == pytest.approx(best, abs=1e-5)
        assert f1_at(probs[:, j], labels[:, j], chosen) >= f1_at(probs[:, j], labels[:, j], 0.5)


@pytest.mark.parametrize("objective", ["precision", "recall"])
def test_target_precision_or_recall(objective):
    probs, labels = noisy(seed=1)
    payload = thresholds.tune(probs, labels, ["a", "b"], objective=objective, target=0.6)
    p, y = probs[:, 0], labels[:, 0] >= 0.5

    def pr(t):
        pred = p >= t
        return (pred & y).sum() / max(pred.sum(), 1), (pred & y).sum() / y.sum()

    reached = [(t, *pr(t)) for t in np.unique(p) if pr(t)[0 if objective == "precision" else 1] >= 0.6]
    other = max(r[2] if objective == "precision" else r[1] for r in reached)
    precision, recall = pr(payload["thresholds"]["a"])
    assert (precision if objective == "precision" else recall) >= 0.6
    assert (recall if objective == "precision" else precision) == pytest.approx(other)


def test_untunable_labels_keep_the_default_with_a_note():
    probs = np.array([[0.9, 0.8], [0.2, 0.7], [0.6, 0.1]], dtype=np.float32)
    labels = np.array([[1, 0], [0, 0], [1, 0]], dtype=np.float32)
    payload = thresholds.tune(probs, labels, ["a", "b"], default=0.4)
    assert payload["thresholds"]["b"] == 0.4 and "no positives" in payload["details"]["b"]["note"]
    payload = thresholds.tune(probs, labels, ["a", "b"], objective="precision", target=1.0)
    assert payload["details"]["a"]["tuned"] and payload["thresholds"]["a"] == pytest.approx(0.6)
    payload = thresholds.tune(np.array([[0.9], [0.8], [0.1]]), np.array([[0], [0], [1]]), ["a"], "recall", 1.0)
    assert payload["thresholds"]["a"] == pytest.approx(0.1)


def test_thresholds_file_round_trip_and_errors(tmp_path):
    probs, labels = noisy()
    payload = thresholds.tune(probs, labels, ["a", "b"])
    path = RunDir(tmp_path).write_thresholds(payload)
    assert thresholds.as_array(thresholds.load(path, ["a", "b"]), ["b", "a"]).tolist() == [
        payload["thresholds"]["b"], payload["thresholds"]["a"]]
    with pytest.raises(ModlabError, match="labels are"):
        thresholds.load(path, ["a", "c"])
    with pytest.raises(ModlabError, match="does not exist"):
        thresholds.load(tmp_path / "missing.json", ["a"])
    (tmp_path / "bad.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(ModlabError, match="not a thresholds.json"):
        thresholds.load(tmp_path / "bad.json", ["a"])
    with pytest.raises(ModlabError, match="objective"):
        thresholds.tune(probs, labels, ["a", "b"], objective="accuracy")
    with pytest.raises(ModlabError, match="needs thresholds.target"):
        thresholds.tune(probs, labels, ["a", "b"], objective="precision")
    (tmp_path / "range.json").write_text(json.dumps({"thresholds": {"a": 1.5}}))
    with pytest.raises(ModlabError, match="'a' is 1.5, not a number in"):
        thresholds.load(tmp_path / "range.json", ["a"])


# --------------------------------------------------------------------------------------------------- gate

METRICS = {"test/f1_tuned/toxic": 0.8, "test/f1_tuned/threat": 0.3, "test/f1_tuned/insult": math.nan,
           "test/f1_tuned_macro": 0.55, "test/f1/toxic": 0.5, "test/f1/threat": 0.1, "test/f1/insult": math.nan,
           "test/f1_macro": 0.3}


def test_gate_global_minimum_per_label_and_overall():
    result = gate.evaluate(METRICS, LABELS, {"min_f1": 0.5}, "test")
    assert result["metric"] == "f1_tuned" and not result["passed"]
    assert result["labels"]["toxic"]["passed"] and result["labels"]["threat"]["passed"] is False
    assert result["failed"] == ["threat"] and result["not_scored"] == ["insult"]
    assert "threat 0.300 < 0.50" in gate.summary_line(result)
    assert gate.evaluate(METRICS, LABELS, {"min_f1": 0.25}, "test")["passed"]
    at_half = gate.evaluate(METRICS, LABELS, {"min_f1": 0.25, "tuned": False}, "test")
    assert at_half["metric"] == "f1" and at_half["failed"] == ["threat"]


def test_gate_per_label_and_macro_minimums():
    result = gate.evaluate(METRICS, LABELS, {"min_f1": {"toxic": 0.7, "macro": 0.6}}, "test")
    assert set(result["labels"]) == {"toxic", "macro"} and result["failed"] == ["macro"]
    assert gate.evaluate(METRICS, LABELS, {"min_f1": None}, "test") is None
    assert gate.evaluate(METRICS, LABELS, None, "test") is None


def test_gate_config_errors_and_exit_code():
    with pytest.raises(ModlabError, match="not labels of this dataset"):
        gate.minimums({"min_f1": {"toxc": 0.5}}, LABELS)
    with pytest.raises(ModlabError, match="number in"):
        gate.minimums({"min_f1": 1.5}, LABELS)
    failed = gate.evaluate(METRICS, LABELS, {"min_f1": 0.5}, "test")
    gate.enforce(failed, {"fail": False})
    with pytest.raises(gate.GateFailed) as err:
        gate.enforce(failed, {"fail": True})
    assert err.value.exit_code == 3 and "\n" not in str(err.value)


def test_a_one_label_taxonomy_is_scored_like_any_label():
    from modlab.evaluation.metrics import split_metrics

    rng = np.random.default_rng(1)
    labels = (rng.random((50, 2)) < 0.4).astype(np.float32)
    probs = np.clip(0.5 * labels + 0.5 * rng.random((50, 2)), 0, 1).astype(np.float32)
    both = split_metrics(probs, labels, ["spam", "scam"], "test")
    alone = split_metrics(probs[:, :1], labels[:, :1], ["spam"], "test")
    assert set(alone) == {k for k in both if not k.endswith("/scam") and not k.endswith(("_macro", "_micro"))} | {
        k for k in both if k.endswith(("_macro", "_micro"))}
    assert all(alone[k] == pytest.approx(both[k]) for k in alone if k.endswith("/spam"))
    assert alone["test/f1_macro"] == pytest.approx(alone["test/f1/spam"])
    tuned = threshold_scores(probs[:, :1], labels[:, :1], np.array([0.4]), ["spam"], "test")
    assert tuned["test/f1_tuned/spam"] == pytest.approx(
        threshold_scores(probs, labels, np.array([0.4, 0.4]), ["spam", "scam"], "test")["test/f1_tuned/spam"])
