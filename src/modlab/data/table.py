"""The one table shape every reader returns, so nothing downstream knows where data came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from modlab.errors import ModlabError

SPLITS = ("train", "val", "test")


@dataclass
class LabeledTable:
    """Rows of (id, text, labels[, meta]).

    labels: float32 [n, num_labels]; 0/1 (or soft in [0, 1]); -1 means unknown and is masked out.
    split: optional per-row "train"/"val"/"test" when the source defines its own splits.
    meta: optional per-row columns kept for analysis (e.g. civil_comments identity columns).
    """

    ids: list[str]
    texts: list[str]
    labels: np.ndarray
    label_names: list[str]
    split: np.ndarray | None = None
    meta: pd.DataFrame | None = None
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.float32)
        n = len(self.ids)
        if len(self.texts) != n or self.labels.shape != (n, len(self.label_names)):
            raise ModlabError(
                f"{self.source}: {n} ids, {len(self.texts)} texts and labels of shape {self.labels.shape} "
                f"for {len(self.label_names)} label names do not line up; fix the reader's output"
            )
        if n == 0:
            raise ModlabError(f"{self.source}: the dataset is empty; point dataset.path at a file with rows")

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> LabeledTable:
        """Rows at `index`, same label set."""
        index = np.asarray(index, dtype=np.int64)
        return LabeledTable(
            ids=[self.ids[i] for i in index],
            texts=[self.texts[i] for i in index],
            labels=self.labels[index],
            label_names=list(self.label_names),
            split=None if self.split is None else self.split[index],
            meta=None if self.meta is None else self.meta.iloc[index].reset_index(drop=True),
            source=self.source,
        )


def validate_table(table: LabeledTable) -> None:
    """Checks any reader's output (built-in or a user's own) before it reaches a DataLoader worker."""
    where = table.source
    bad_text = next((i for i, t in enumerate(table.texts) if not isinstance(t, str) or not t.strip()), None)
    if bad_text is not None:
        raise ModlabError(
            f"{where}: row {bad_text + 1} (id {table.ids[bad_text]!r}) has an empty or non-string "
            "text; drop such rows in the reader"
        )
    labels = table.labels
    ok = np.isfinite(labels) & ((labels == -1) | ((labels >= 0) & (labels <= 1)))
    if not ok.all():
        i, j = map(int, np.argwhere(~ok)[0])
        raise ModlabError(
            f"{where}: row {i + 1} (id {table.ids[i]!r}) has label {table.label_names[j]!r} = "
            f"{labels[i, j]}; labels must be in [0, 1] or -1 (unknown)"
        )
    if len(set(table.label_names)) != len(table.label_names):
        raise ModlabError(f"{where}: label names {table.label_names} repeat; each label needs its own name")
    if len(set(table.ids)) != len(table.ids):
        seen: set[str] = set()
        dup = next(key for key in table.ids if key in seen or seen.add(key))
        raise ModlabError(
            f"{where}: id {dup!r} appears more than once; ids must be unique (splits are saved by id)"
        )
    if table.split is not None:
        odd = sorted(set(np.unique(table.split).tolist()) - set(SPLITS))
        if odd:
            raise ModlabError(
                f"{where}: split {odd[0]!r} is not one of {', '.join(SPLITS)}; fix the reader's split"
            )
    if table.meta is not None and len(table.meta) != len(table):
        raise ModlabError(
            f"{where}: meta has {len(table.meta)} rows for {len(table)} rows; fix the reader's output"
        )
