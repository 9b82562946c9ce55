"""K-fold cross-validation splits (`data.folds=K data.fold=i`): the test split as without folds, val = fold i.

The test split is carved exactly as a run without folds carves it (`splits.assign_splits` with the same
`val_size`, `test_size` and seed, or the source's own test split), so every fold and every plain run are
scored on the same test rows. The remaining rows (train + val) are cut into K folds by iterstrat's
MultilabelStratifiedKFold (Sechidis et al. 2011, shuffled with the split seed) on the labels binarized at
0.5 (-1, unknown, counts as negative): every label's positives are spread evenly over the folds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from modlab.data.splits import assign_splits
from modlab.data.table import LabeledTable
from modlab.errors import ModlabError


def check_fold_args(folds: int | None, fold: int, splits_file: str | None = None) -> None:
    """One-line errors for a bad `data.folds` / `data.fold`, and for folds combined with a foreign splits file."""
    if folds is None:
        if fold not in (0, None):  # a fold of nothing would silently train on the plain splits
            raise ModlabError(f"data.fold={fold} needs data.folds=K (the number of folds); e.g. data.folds=5 "
                              f"data.fold={fold}")
        return
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ModlabError(f"data.folds={folds} must be an integer >= 2 (or null for no folds); e.g. data.folds=5")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise ModlabError(f"data.fold={fold} must be in [0, {folds}) for data.folds={folds}; "
                          f"e.g. 'data.fold=range({folds})' with -m")
    if splits_file and _saved_folds(splits_file) != {"k": folds, "fold": fold}:
        # A fold run's own splits.json (eval.py re-applies it) names the same fold; any other file fixes
        # the rows itself, so the fold settings would be silently ignored.
        raise ModlabError(f"data.folds={folds} with data.splits_file={splits_file}: the file fixes the splits; "
                          f"set data.folds=null or data.splits_file=null")


def _saved_folds(path: str) -> dict | None:
    try:
        saved = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # load_splits reports a missing or broken file in its own words
    folds = saved.get("folds") if isinstance(saved, dict) else None
    return {"k": folds.get("k"), "fold": folds.get("fold")} if isinstance(folds, dict) else None


def fold_splits(table: LabeledTable, folds: int, fold: int, val_size: float, test_size: float,
                seed: int) -> dict[str, np.ndarray]:
    """Row indices per split: test as without folds, val = fold `fold` of the other rows, train = the rest."""
    check_fold_args(folds, fold)
    base = assign_splits(table, val_size, test_size, seed)
    pool = np.sort(np.concatenate([base["train"], base["val"]]))
    if len(pool) < folds:
        raise ModlabError(f"data.folds={folds} needs at least {folds} non-test rows, the data has {len(pool)}; "
                          f"lower data.folds")
    positive = (table.labels[pool] >= 0.5).astype(np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for i, (_, held) in enumerate(splitter.split(np.zeros((len(pool), 1)), positive)):
        if i == fold:
            val = np.sort(pool[held])
            break
    return {"train": np.setdiff1d(pool, val), "val": val, "test": base["test"]}


def fold_info(folds: int, fold: int, seed: int) -> dict:
    """splits.json's `folds` entry: which fold of how many, under which seed."""
    return {"k": int(folds), "fold": int(fold), "seed": int(seed)}
