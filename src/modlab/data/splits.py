"""Train/val/test rows: keep a source's own splits, carve missing ones by multi-label iterative stratification.

Stratification follows Sechidis et al. (2011): the label with the fewest positives left is placed first, each
of its rows going to the split that still wants the most positives of it, so a label with a dozen positives
still lands in every split. Rows without any positive fill the remaining room. Seeded: the same table and
seed give the same splits. `load_splits` re-applies the ids a run saved (splits.json) to reproduce it exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from modlab.data.table import SPLITS, LabeledTable
from modlab.errors import ModlabError


def stratify(labels: np.ndarray, fractions: list[float], seed: int) -> np.ndarray:
    """Subset index (0..k-1) for every row, with `fractions` of the rows and of every label's positives.

    `labels` may be soft or hold -1 (unknown): a row counts as positive for a label where it is >= 0.5.
    """
    positive = np.asarray(labels) >= 0.5
    n = len(positive)
    share = np.asarray(fractions, dtype=np.float64)
    share = share / share.sum()
    rng = np.random.default_rng(seed)
    room = (share * n).tolist()  # rows each subset still wants
    want = share[:, None] * positive.sum(axis=0)[None, :]  # positives of each label each subset still wants
    out = np.full(n, -1, dtype=np.int64)
    left = positive.copy()
    k = len(share)
    while True:
        counts = left.sum(axis=0)
        active = np.flatnonzero(counts)
        if active.size == 0:
            break
        label = int(active[np.argmin(counts[active])])
        rows = np.flatnonzero(left[:, label])
        rng.shuffle(rows)
        ties = rng.random((len(rows), k))  # random tie-break, drawn up front so the order is seeded
        for row, tie in zip(rows.tolist(), ties, strict=True):
            column = want[:, label]
            best = max(range(k), key=lambda s: (column[s], room[s], tie[s]))
            out[row] = best
            want[best] -= positive[row]
            room[best] -= 1
            left[row] = False
    rest = np.flatnonzero(out < 0)
    rng.shuffle(rest)
    out[rest] = np.repeat(np.arange(k), _apportion(np.maximum(room, 0), len(rest)))
    return out


def _apportion(weights, total: int) -> np.ndarray:
    """Integer counts summing to `total`, proportional to `weights` (largest remainders)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(np.int64)
    for j in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[j] += 1
    return counts


def assign_splits(table: LabeledTable, val_size: float, test_size: float, seed: int) -> dict[str, np.ndarray]:
    """Row indices per split. Splits the source defines are kept; missing ones are carved out of its train rows.

    `val_size` and `test_size` are fractions of the rows being split (the source's train rows).
    """
    for name, value in (("val_size", val_size), ("test_size", test_size)):
        if not 0 <= value < 1:
            raise ModlabError(f"data.{name}={value} must be a fraction in [0, 1)")
    if val_size + test_size >= 1:
        raise ModlabError(
            f"data.val_size + data.test_size = {val_size + test_size:g} leaves no training rows; "
            "make them sum to less than 1"
        )
    all_rows = np.arange(len(table))
    if table.split is None:
        given = {"train": all_rows, "val": all_rows[:0], "test": all_rows[:0]}
    else:
        given = {name: all_rows[table.split == name] for name in SPLITS}
    carve = {
        name: size
        for name, size in (("val", val_size), ("test", test_size))
        if len(given[name]) == 0 and size > 0
    }
    if not carve:
        return given
    pool = given["train"]
    names = ["train", *carve]
    fractions = [1 - sum(carve.values()), *carve.values()]
    assignment = stratify(table.labels[pool], fractions, seed)
    out = dict(given)
    for j, name in enumerate(names):
        out[name] = np.sort(pool[assignment == j])
    return out


def split_ids(table: LabeledTable, rows: dict[str, np.ndarray]) -> dict[str, list[str]]:
    return {name: [table.ids[i] for i in index] for name, index in rows.items()}


def load_splits(path: str | Path, table: LabeledTable) -> dict[str, np.ndarray]:
    """Row indices from a saved splits.json ({"train": [ids], "val": [...], "test": [...]}).

    Keys other than the splits (a fold run's "folds": {"k", "fold", "seed"}) describe the file and are skipped.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModlabError(
            f"data.splits_file={path} does not exist; point it at the splits.json of an earlier run"
        )
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModlabError(
            f"{path}: not valid JSON ({err}); point data.splits_file at a run's splits.json"
        ) from None
    if not isinstance(saved, dict) or "train" not in saved or any(
            not isinstance(saved.get(name, []), list) for name in SPLITS):
        raise ModlabError(f"{path}: expected an object with train/val/test id lists; use a run's splits.json")
    position = {key: i for i, key in enumerate(table.ids)}
    out, owner = {}, {}
    for name in SPLITS:
        ids = [str(x) for x in saved.get(name, [])]
        missing = [key for key in ids if key not in position]
        if missing:
            raise ModlabError(
                f"{path}: {name} id {missing[0]!r} ({len(missing)} ids in all) is not in the dataset "
                f"{table.source}; use the splits.json of a run on this same dataset"
            )
        for key in ids:
            if owner.setdefault(key, name) != name:
                raise ModlabError(
                    f"{path}: id {key!r} is in both {owner[key]} and {name}; each id belongs to one split"
                )
        out[name] = np.sort(np.fromiter((position[key] for key in ids), dtype=np.int64, count=len(ids)))
    return out
