"""The one table shape every reader returns, so nothing downstream knows where data came from."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    notes: list[str] = field(default_factory=list)

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
