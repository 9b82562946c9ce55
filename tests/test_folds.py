"""K-fold splits (data.folds / data.fold): disjoint stratified folds, a fixed test split, splits.json, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import FAST, JIGSAW_SAMPLE, ROOT

from modlab.data import jigsaw, synthetic
from modlab.data.datamodule import ModerationDataModule
from modlab.data.folds import fold_splits
from modlab.data.splits import assign_splits, load_splits
from modlab.errors import ModlabError

K = 4


def all_folds(table, k=K, seed=7, val_size=0.1, test_size=0.15):
    return [fold_splits(table, k, i, val_size, test_size, seed) for i in range(k)]


def check_folds(table, folds, k, test):
    non_test = np.setdiff1d(np.arange(len(table)), test)
    vals = [f["val"] for f in folds]
    for f in folds:
        np.testing.assert_array_equal(f["test"], test)  # the same test split for every fold
        assert len(np.intersect1d(f["train"], f["val"])) == 0
        assert len(np.intersect1d(f["train"], test)) == 0 and len(np.intersect1d(f["val"], test)) == 0
        np.testing.assert_array_equal(np.union1d(f["train"], f["val"]), non_test)
    for a in range(k):
        for b in range(a + 1, k):
            assert len(np.intersect1d(vals[a], vals[b])) == 0  # folds are disjoint
    np.testing.assert_array_equal(np.sort(np.concatenate(vals)), non_test)  # ... and cover the non-test rows
    positive = table.labels >= 0.5
    for j, name in enumerate(table.label_names):
        total = int(positive[non_test, j].sum())
        if total < k:
            continue
        counts = [int(positive[v, j].sum()) for v in vals]
        assert all(abs(c - total / k) <= 1 for c in counts), (name, counts, total)


def test_synthetic_folds_are_disjoint_stratified_and_keep_the_test_split():
    table = synthetic.generate(size=400, seed=3)
    test = assign_splits(table, 0.1, 0.15, 7)["test"]  # exactly what a run without folds holds out
    folds = all_folds(table)
    check_folds(table, folds, K, test)
    again = all_folds(table)
    for f, g in zip(folds, again, strict=True):  # same K and seed: same folds
        for split in f:
            np.testing.assert_array_equal(f[split], g[split])
    other = fold_splits(table, K, 0, 0.1, 0.15, seed=8)
    assert not np.array_equal(other["val"], folds[0]["val"])


def test_jigsaw_sample_folds():
    table = jigsaw.read(JIGSAW_SAMPLE)
    test = assign_splits(table, 0.1, 0.1, 0)["test"]
    check_folds(table, all_folds(table, k=5, seed=0, test_size=0.1), 5, test)


def test_a_source_test_split_is_kept():
    table = synthetic.generate(size=300, seed=1)
    table.split = np.where(np.arange(300) % 5 == 0, "test", "train").astype(object)
    test = np.flatnonzero(table.split == "test")
    check_folds(table, all_folds(table, k=3), 3, test)


def datamodule(tmp_path, **kwargs):
    table = synthetic.generate(size=300, seed=0)
    return ModerationDataModule(reader=lambda: table, tokenizer=None, output_dir=str(tmp_path), **kwargs)


def test_splits_json_records_the_fold_and_loads_back(tmp_path):
    dm = datamodule(tmp_path, folds=3, fold=1, split_seed=5)
    dm.setup()
    saved = json.loads((tmp_path / "splits.json").read_text())
    assert saved["folds"] == {"k": 3, "fold": 1, "seed": 5}
    assert sorted(saved) == ["folds", "test", "train", "val"]
    rows = load_splits(tmp_path / "splits.json", dm.table)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(rows[split], dm.rows[split])
    # eval.py re-applies a fold run's own splits.json with its saved config (same folds): allowed
    again = datamodule(tmp_path / "again", folds=3, fold=1, splits_file=str(tmp_path / "splits.json"))
    again.setup()
    np.testing.assert_array_equal(again.rows["val"], dm.rows["val"])
    # an old-style file (splits only) still loads
    old = tmp_path / "old.json"
    old.write_text(json.dumps({k: v for k, v in saved.items() if k != "folds"}))
    np.testing.assert_array_equal(load_splits(old, dm.table)["val"], dm.rows["val"])


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"folds": 1}, "data.folds=1"),
    ({"folds": 3, "fold": 3}, "data.fold=3"),
    ({"folds": 3, "fold": -1}, "data.fold=-1"),
    ({"folds": 3, "splits_file": "somewhere/splits.json"}, "data.splits_file"),
    ({"fold": 2}, "data.fold=2 needs data.folds"),
])
def test_bad_fold_settings_are_one_line_errors(tmp_path, kwargs, key):
    with pytest.raises(ModlabError) as err:
        datamodule(tmp_path, **kwargs).setup()
    assert key in str(err.value) and "\n" not in str(err.value)


def test_multirun_over_folds(tmp_path):
    env = {**os.environ, "MODLAB_ROOT": str(tmp_path), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    # the smallest real sweep: 2 folds of 100 rows, one training batch each (the splits are what is checked)
    fast = [o for o in FAST if not o.startswith(("dataset.reader.size", "data.max_length"))] + [
        "dataset.reader.size=100", "data.max_length=16", "+trainer.limit_train_batches=1", "logger=none",
        "report.enabled=false", "robust.enabled=false", "test=false"]
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", *fast, "data.folds=2", "data.fold=range(2)"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted((tmp_path / "outputs" / "train" / "multiruns").glob("*/*/splits.json"))
    saved = [json.loads(f.read_text()) for f in files]
    assert [s["folds"]["fold"] for s in saved] == [0, 1]
    assert not set(saved[0]["val"]) & set(saved[1]["val"])
    assert set(saved[0]["val"]) | set(saved[1]["val"]) == set(saved[0]["train"]) | set(saved[0]["val"])
    assert saved[0]["test"] == saved[1]["test"]
