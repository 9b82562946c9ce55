"""The one DataModule: read (cached) -> validate -> split -> tokenize (cached) -> dynamically padded batches.

Everything that can be wrong with the data is found in `setup()`, before any training and never inside a
DataLoader worker: workers only slice ready arrays.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from modlab.data import table_cache
from modlab.data.folds import check_fold_args, fold_info, fold_splits
from modlab.data.splits import assign_splits, load_splits, split_ids
from modlab.data.table import LabeledTable, validate_table
from modlab.data.tokens import (
    LengthGroupedSampler,
    LengthSortedSampler,
    PadCollator,
    TokenizedDataset,
    tokenize,
)
from modlab.errors import ModlabError
from modlab.rundir import RunDir

log = logging.getLogger(__name__)

FEW_POSITIVES = 3  # fewer positives than this in val/test: that label's metrics are noise


class ModerationDataModule(L.LightningDataModule):
    """`reader()` gives the table; `splits_file` re-applies a run's saved splits.json instead of carving.

    `folds`/`fold`: K-fold cross-validation (modlab.data.folds): val = fold `fold` of the non-test rows.
    `tokenizer=None` reads and splits only (no token arrays, no loaders): the TF-IDF baseline's use.

    Built by `modlab.training.assemble` from the `data:` config block (a `_target_`).
    """

    def __init__(
        self,
        reader: Callable[[], LabeledTable],
        tokenizer,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        val_size: float = 0.1,
        test_size: float = 0.1,
        split_seed: int = 0,
        length_grouping: bool = True,
        cache_dir: str | None = None,
        output_dir: str | None = None,
        splits_file: str | None = None,
        pad_to_multiple_of: int | None = None,
        folds: int | None = None,
        fold: int = 0,
    ) -> None:
        super().__init__()
        self.reader, self.tokenizer, self.max_length = reader, tokenizer, max_length
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.val_size, self.test_size, self.split_seed = val_size, test_size, split_seed
        self.length_grouping, self.cache_dir, self.output_dir = length_grouping, cache_dir, output_dir
        self.splits_file, self.pad_to_multiple_of = splits_file, pad_to_multiple_of
        self.table: LabeledTable | None = None
        check_fold_args(folds, fold, splits_file)
        self.folds, self.fold = folds, fold

    def setup(self, stage: str | None = None) -> None:
        if self.table is not None:
            return
        started = time.perf_counter()
        table = table_cache.read(self.reader, self.cache_dir)
        if not isinstance(table, LabeledTable):
            raise ModlabError(
                f"dataset.reader returned a {type(table).__name__}, not a LabeledTable; "
                "point dataset.reader._target_ at a function returning modlab.data.table.LabeledTable"
            )
        validate_table(table)
        if self.splits_file:
            rows = load_splits(self.splits_file, table)
        elif self.folds:
            rows = fold_splits(table, self.folds, self.fold, self.val_size, self.test_size, self.split_seed)
        else:
            rows = assign_splits(table, self.val_size, self.test_size, self.split_seed)
        check_splits(table, rows)
        if self.tokenizer is not None:
            self.token_ids, self.offsets = tokenize(table.texts, self.tokenizer, self.max_length, self.cache_dir)
        self.table, self.rows = table, rows
        log.info(
            "dataset %s: %s rows per split, %d labels, set up in %.2fs",
            table.source,
            {k: len(v) for k, v in rows.items()},
            len(table.label_names),
            time.perf_counter() - started,
        )
        if self.output_dir:
            extra = {"folds": fold_info(self.folds, self.fold, self.split_seed)} if self.folds else {}
            RunDir(self.output_dir).write_splits(split_ids(table, rows) | extra)

    @property
    def label_names(self) -> list[str]:
        return self.table.label_names

    @property
    def train_labels(self) -> np.ndarray:
        return self.table.labels[self.rows["train"]]

    def split_table(self, split: str) -> LabeledTable:
        """The rows of one split as a table (texts, labels and meta such as identity columns)."""
        return self.table.take(self.rows[split])

    def refit_view(self) -> ModerationDataModule:
        """The same data with val folded into train (refit=true): train = train + val, val empty, test as is."""
        view = copy.copy(self)
        view.rows = {**self.rows, "train": np.sort(np.concatenate([self.rows["train"], self.rows["val"]])),
                     "val": self.rows["val"][:0]}
        return view

    def dataset(self, split: str) -> TokenizedDataset:
        return TokenizedDataset(self.token_ids, self.offsets, self.rows[split], self.table.labels)

    def _loader_kwargs(self) -> dict:
        return dict(collate_fn=PadCollator(self.tokenizer.pad_token_id, self.pad_to_multiple_of),
                    num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def eval_loader(self, rows: np.ndarray) -> DataLoader:
        """Length-sorted batches (the least padding) over any rows: val, test, or eval.py's train/all."""
        data = TokenizedDataset(self.token_ids, self.offsets, rows, self.table.labels)
        return DataLoader(data, batch_size=self.eval_batch_size, sampler=LengthSortedSampler(data.lengths()),
                          **self._loader_kwargs())

    def train_dataloader(self) -> DataLoader:
        data = self.dataset("train")
        if self.length_grouping:
            sampler = LengthGroupedSampler(data.lengths(), self.batch_size, seed=self.split_seed)
            return DataLoader(data, batch_size=self.batch_size, sampler=sampler, **self._loader_kwargs())
        return DataLoader(data, batch_size=self.batch_size, shuffle=True, **self._loader_kwargs())

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader(self.rows["val"])

    def test_dataloader(self) -> DataLoader:
        return self.eval_loader(self.rows["test"])


def check_splits(table: LabeledTable, rows: dict[str, np.ndarray]) -> None:
    """No training rows is an error; labels without positives where they matter are warnings."""
    if len(rows["train"]) == 0:
        raise ModlabError(
            f"{table.source}: the training split is empty; lower data.val_size/data.test_size or "
            "give the dataset training rows"
        )
    for split in ("val", "test"):
        if len(rows[split]) == 0:
            log.warning(
                "%s: the %s split is empty; set data.%s_size > 0 or use a source with a %s split",
                table.source,
                split,
                split,
                split,
            )
    positives = {
        split: ((table.labels[index] >= 0.5).sum(axis=0) if len(index) else None)
        for split, index in rows.items()
    }
    for j, name in enumerate(table.label_names):
        if positives["train"][j] == 0:
            log.warning(
                "label %r has no positives in the training split (%d rows): the model cannot learn it, "
                "its pos_weight stays finite (1); add positive rows or leave it out via "
                "dataset.reader.labels",
                name,
                len(rows["train"]),
            )
    for split in ("val", "test"):
        if positives[split] is None:
            continue
        few = [
            f"{n} {int(c)}"
            for n, c in zip(table.label_names, positives[split], strict=True)
            if c < FEW_POSITIVES
        ]
        if few:
            log.warning(
                "%s split has fewer than %d positives for: %s; their ROC/PR-AUC are NaN (none) or noisy",
                split,
                FEW_POSITIVES,
                ", ".join(few),
            )
