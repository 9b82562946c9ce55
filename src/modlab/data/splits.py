"""Train/val/test assignment: keep a source's own splits, carve missing ones by multi-label stratification."""

from __future__ import annotations

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

from modlab.data.table import LabeledTable


def _carve(labels: np.ndarray, pool: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split index `pool` into (rest, carved) with `fraction` carved, spreading every label's positives."""
    if fraction <= 0 or len(pool) < 2:
        return pool, pool[:0]
    binary = (labels[pool] >= 0.5).astype(int)
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    rest, carved = next(splitter.split(np.zeros(len(pool)), binary))
    return np.sort(pool[rest]), np.sort(pool[carved])


def assign_splits(table: LabeledTable, val_size: float, test_size: float, seed: int) -> dict[str, np.ndarray]:
    """Row indices per split. Splits the source already defines are kept; the others come out of train."""
    all_rows = np.arange(len(table))
    if table.split is None:
        given = {"train": all_rows}
    else:
        given = {name: all_rows[table.split == name] for name in ("train", "val", "test")}
    train = given["train"]
    test = given.get("test", train[:0])
    if len(test) == 0 and test_size > 0:
        train, test = _carve(table.labels, train, test_size, seed)
    val = given.get("val", train[:0])
    if len(val) == 0 and val_size > 0:
        # val_size is a fraction of the whole table, so rescale it to what is left in train.
        train, val = _carve(table.labels, train, min(0.9, val_size / max(1e-9, 1 - test_size)), seed + 1)
    return {"train": train, "val": val, "test": test}
