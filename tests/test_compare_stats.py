"""The statistics behind `modlab compare`: mean ± std, paired t-intervals, the paired bootstrap, `--paired`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from modlab.cli import main
from modlab.errors import ModlabError
from modlab.reporting import statistics
from modlab.reporting.compare import load_runs, paired
from modlab.rundir import RunDir


def test_summarize_is_mean_sample_std_and_count():
    s = statistics.summarize([0.80, 0.90, None, 0.85, math.nan])
    assert (s.mean, s.std, s.n) == (pytest.approx(0.85), pytest.approx(0.05), 3)  # sqrt((.05²+.05²)/2)
    assert math.isnan(statistics.summarize([0.7]).std) and statistics.summarize([]).n == 0


def test_paired_t_against_the_t_table():
    b = np.full(5, 0.80)
    a = b + np.array([0.01, 0.03, 0.02, 0.04, 0.00])
    d = statistics.paired_t(a, b)
    # mean 0.02, sd sqrt(0.001/4) = 0.0158114, se 0.00707107, t(0.975, 4 df) = 2.776445: half-width 0.0196324
    assert d.estimate == pytest.approx(0.02) and d.n == 5
    assert (d.low, d.high) == (pytest.approx(0.0003676, abs=1e-7), pytest.approx(0.0396324, abs=1e-7))
    assert 0.04 < d.p_value < 0.05 and d.excludes_zero  # t = 2.828: between t(0.975) 2.776 and t(0.98) 2.999
    same = statistics.paired_t([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert (same.estimate, same.low, same.high, same.excludes_zero) == (0.0, 0.0, 0.0, False)
    with pytest.raises(ModlabError, match="at least 2 pairs"):
        statistics.paired_t([0.9], [0.8])


def test_auroc_by_hand_ties_unknown_and_soft_labels():
    # positives 0.9, 0.7; negatives 0.8, 0.3: 3 of the 4 (positive, negative) pairs are ordered right
    assert statistics.auroc([0.9, 0.8, 0.7, 0.3], [1, 0, 1, 0]) == pytest.approx(0.75)
    assert statistics.auroc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)  # a tie counts half
    assert statistics.auroc([0.95, 0.9, 0.8, 0.7, 0.3], [-1, 1, 0, 1, 0]) == pytest.approx(0.75)  # -1 ignored
    assert math.isnan(statistics.auroc([0.9, 0.1], [1, 1]))
    np.testing.assert_array_equal(statistics.targets_of([0.7, 0.2, -1, 0.5]), [1, 0, -1, 1])


def test_auroc_statistics_match_sklearn():
    rng = np.random.default_rng(0)
    targets = (rng.random((3, 80)) < [[0.5], [0.2], [0.1]]).astype(int)
    targets[2, :5] = -1
    scores = np.round(rng.random((3, 80)) * 0.7 + targets.clip(0) * 0.3, 2)  # rounded: ties
    names = ["a", "b", "c"]
    known = targets >= 0
    per_label = [roc_auc_score(targets[j][known[j]], scores[j][known[j]]) for j in range(3)]
    assert statistics.auroc_statistic("auroc/b", names)(scores, targets) == pytest.approx(per_label[1])
    assert statistics.auroc_statistic("auroc_macro", names)(scores, targets) == pytest.approx(np.mean(per_label))
    micro = roc_auc_score(targets[known], scores[known])
    assert statistics.auroc_statistic("auroc_micro", names)(scores, targets) == pytest.approx(micro)
    with pytest.raises(ModlabError, match="ROC-AUC"):
        statistics.auroc_statistic("f1_macro", names)


def test_paired_bootstrap_matches_a_resample_by_resample_recomputation():
    rng = np.random.default_rng(1)
    targets = (rng.random((2, 60)) < 0.5).astype(int)
    a = rng.random((2, 60)) * 0.5 + targets * 0.5
    b = rng.random((2, 60)) * 0.9 + targets * 0.1
    statistic = statistics.auroc_statistic("auroc_macro", ["x", "y"])
    d = statistics.paired_bootstrap(statistic, a, b, targets, resamples=300, seed=7)

    def pairwise(s, t):  # the definition: P(positive scores above negative), ties half
        diff = s[t == 1][:, None] - s[t == 0][None, :]
        return ((diff > 0) + 0.5 * (diff == 0)).mean()

    def macro(scores, index):
        return np.mean([pairwise(scores[j, index], targets[j, index]) for j in range(2)])

    (index,) = statistics.resample_indices(60, 300, 7, chunk=300)
    reference = [macro(a, i) - macro(b, i) for i in index]
    full = np.mean([roc_auc_score(targets[j], a[j]) - roc_auc_score(targets[j], b[j]) for j in range(2)])
    assert d.estimate == pytest.approx(full) == macro(a, np.arange(60)) - macro(b, np.arange(60))
    assert (d.low, d.high) == (pytest.approx(np.percentile(reference, 2.5)), pytest.approx(np.percentile(reference, 97.5)))
    assert d.excludes_zero and d.low > 0 and d.n == 60
    # seeded and independent of the chunking: the same resamples, however many are drawn at once
    np.testing.assert_array_equal(np.concatenate(list(statistics.resample_indices(60, 300, 7, chunk=7))), index)
    assert statistics.paired_bootstrap(statistic, a, b, targets, resamples=300, seed=7) == d
    same = statistics.paired_bootstrap(statistic, a, a, targets, resamples=100)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)


def test_a_rare_label_leaves_its_undefined_resamples_out():
    targets = np.zeros((1, 40), dtype=int)
    targets[0, :2] = 1  # 2 positives of 40: about 1 resample in 8 draws none
    scores = np.linspace(1, 0, 40)[None, :]
    d = statistics.paired_bootstrap(statistics.auroc_statistic("auroc/x", ["x"]), scores, scores[:, ::-1],
                                    targets, resamples=400, seed=0)
    assert 0 < d.undefined < 150 and not math.isnan(d.low) and d.estimate == pytest.approx(1.0)


# --- `modlab compare --paired` on hand-made run dirs ---------------------------------------------------------

CONFIG = "optimized_metric: val/auroc_macro\nmonitor: {{metric: val/auroc_macro, mode: max}}\n" \
         "head: {{_target_: modlab.models.heads.{head}}}\nseed: {fold}\ndata: {{fold: {fold}, folds: 5}}\n"


def fake_run(path: Path, metrics: dict, config: str) -> RunDir:
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "config.yaml").write_text(config)
    return RunDir(path)


def folds(root: Path, head: str, values) -> Path:
    for fold, value in enumerate(values):
        fake_run(root / f"{head}-{fold}", {"val/auroc_macro": value, "test/auroc/spam": value},
                 CONFIG.format(head=head, fold=fold))
    return root


def test_paired_over_folds_prints_the_t_interval(tmp_path, capsys):
    a = folds(tmp_path / "a", "AttentionHead", [0.81, 0.83, 0.82, 0.84, 0.80])
    b = folds(tmp_path / "b", "MeanHead", [0.80] * 5)
    assert main(["compare", str(a), str(b), "--paired"]) == 0
    out = capsys.readouterr().out
    assert "val/auroc_macro: A - B = +0.0200 [+0.0004, +0.0396]" in out and "paired t" in out and "n=5" in out
    assert f"A = {a}: 0.820 (mean of 5)" in out and "A is better" in out
    # one dir holding both configs (a multirun over head x fold): the two configs are A and B
    both = tmp_path / "both"
    folds(both, "AttentionHead", [0.81, 0.83, 0.82, 0.84, 0.80])
    folds(both, "MeanHead", [0.80] * 5)
    d = paired([both])
    assert d.estimate == pytest.approx(0.02) and d.low == pytest.approx(0.0003676, abs=1e-7)
    # fold runs still aggregate in the table; --no-aggregate keeps one row each
    assert sorted((r.name, r.count) for r in load_runs([both])) == [("AttentionHead-0 (mean of 5)", 5),
                                                                    ("MeanHead-0 (mean of 5)", 5)]
    assert main(["compare", str(both), "--no-aggregate", "--no-plot"]) == 0
    assert "10 runs" in capsys.readouterr().out


def test_a_key_older_runs_lack_does_not_split_their_repeats(tmp_path):
    """Fold 0 ran before `refit` existed: its config lacks the key, yet it is a repeat of folds 1-4."""
    folds(tmp_path, "MeanHead", [0.80, 0.81, 0.82, 0.83, 0.84])
    for fold in range(1, 5):
        config = tmp_path / f"MeanHead-{fold}" / "config.yaml"
        config.write_text(config.read_text() + "refit: false\n")
    (run,) = load_runs([tmp_path])
    assert run.count == 5 and run.metrics["val/auroc_macro"] == pytest.approx(0.82)
    # a key both configs have still tells them apart
    folds(tmp_path / "other", "AttentionHead", [0.7] * 5)
    assert sorted(r.count for r in load_runs([tmp_path])) == [5, 5]


def predictions_run(path: Path, probs: np.ndarray, labels: np.ndarray, ids) -> RunDir:
    run = fake_run(path, {"val/auroc_macro": 0.5, "test/auroc/spam": 0.5, "test/auroc/scam": 0.5},
                   CONFIG.format(head=path.name, fold=0))
    run.write_predictions(ids, ["text, with a comma"] * len(ids), probs, labels, ["spam", "scam"])
    return run


def test_paired_single_runs_bootstrap_their_test_rows(tmp_path, capsys):
    rng = np.random.default_rng(3)
    labels = (rng.random((200, 2)) < 0.3).astype(np.float32)
    good = np.round(rng.random((200, 2)) * 0.6 + labels * 0.4, 6)
    noise = np.round(rng.random((200, 2)), 6)
    ids = [f"r{i}" for i in range(200)]
    a = predictions_run(tmp_path / "good", good, labels, ids)
    order = rng.permutation(200)  # B's file lists the rows in another order: pairing is by id
    b = predictions_run(tmp_path / "noise", noise[order], labels[order], [ids[i] for i in order])
    assert main(["compare", str(a.path), str(b.path), "--paired", "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    expected = np.mean([roc_auc_score(labels[:, j], good[:, j]) - roc_auc_score(labels[:, j], noise[:, j])
                        for j in range(2)])
    assert f"test/auroc_macro: A - B = {expected:+.4f} [" in out and "bootstrap" in out and "n=200" in out
    assert "A is better" in out
    d = paired([b.path, a.path], sort_by="test/auroc/scam", resamples=200)
    assert d.estimate == pytest.approx(roc_auc_score(labels[:, 1], noise[:, 1]) - roc_auc_score(labels[:, 1], good[:, 1]))
    assert d.high < 0  # B - A: the interval lies below 0


def test_paired_errors_are_one_line(tmp_path, capsys):
    a = folds(tmp_path / "a", "AttentionHead", [0.81, 0.83, 0.82])
    single = fake_run(tmp_path / "single", {"val/auroc_macro": 0.8, "test/auroc/spam": 0.8},
                      CONFIG.format(head="MeanHead", fold=0))
    other = fake_run(tmp_path / "other", {"val/auroc_macro": 0.7, "test/auroc/spam": 0.7},
                     CONFIG.format(head="ClsHead", fold=0))
    cases = [
        ([str(a), str(single.path)], "A has 3 run(s) and B 1"),
        ([str(single.path), str(other.path)], "predictions.csv does not exist"),
        ([str(a), str(single.path), str(other.path)], "got 3 paths"),
        ([str(tmp_path)], "holds runs of 3 configs"),
    ]
    for argv, message in cases:
        assert main(["compare", *argv, "--paired"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    b = folds(tmp_path / "b", "MeanHead", [0.8])
    fake_run(tmp_path / "b" / "late", {"val/auroc_macro": 0.8}, CONFIG.format(head="MeanHead", fold=4))
    with pytest.raises(ModlabError, match="share 1 folds/seeds"):
        paired([a, b])
