"""The one DataModule: read -> split -> tokenize (cached) -> dynamically padded batches."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from modlab.data.splits import assign_splits
from modlab.data.table import LabeledTable
from modlab.io import write_json
from modlab.data.tokens import LengthGroupedSampler, PadCollator, TokenizedDataset, tokenize

log = logging.getLogger(__name__)


class ModerationDataModule(L.LightningDataModule):
    def __init__(self, reader: Callable[[], LabeledTable], tokenizer, max_length: int = 128, batch_size: int = 32,
                 eval_batch_size: int = 64, num_workers: int = 0, val_size: float = 0.1, test_size: float = 0.1,
                 seed: int = 0, length_grouping: bool = True, cache_dir: str | None = None,
                 output_dir: str | None = None) -> None:
        super().__init__()
        self.reader, self.tokenizer, self.max_length = reader, tokenizer, max_length
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.val_size, self.test_size, self.seed = val_size, test_size, seed
        self.length_grouping, self.cache_dir, self.output_dir = length_grouping, cache_dir, output_dir
        self.table: LabeledTable | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.table is not None:
            return
        self.table = self.reader()
        self.rows = assign_splits(self.table, self.val_size, self.test_size, self.seed)
        self.token_ids, self.offsets = tokenize(self.table.texts, self.tokenizer, self.max_length, self.cache_dir)
        log.info("dataset %s: %s", self.table.source, {k: len(v) for k, v in self.rows.items()})
        if self.output_dir:
            self._save_split_ids(Path(self.output_dir) / "splits.json")

    def _save_split_ids(self, path: Path) -> None:
        write_json(path, {k: [self.table.ids[i] for i in v] for k, v in self.rows.items()})

    @property
    def label_names(self) -> list[str]:
        return self.table.label_names

    @property
    def train_labels(self) -> np.ndarray:
        return self.table.labels[self.rows["train"]]

    def dataset(self, split: str) -> TokenizedDataset:
        return TokenizedDataset(self.token_ids, self.offsets, self.rows[split], self.table.labels)

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        data = self.dataset(split)
        kwargs = dict(collate_fn=PadCollator(self.tokenizer.pad_token_id), num_workers=self.num_workers,
                      persistent_workers=self.num_workers > 0)
        if not train:
            return DataLoader(data, batch_size=self.eval_batch_size, shuffle=False, **kwargs)
        if self.length_grouping:
            sampler = LengthGroupedSampler(data.lengths(), self.batch_size, seed=self.seed)
            return DataLoader(data, batch_size=self.batch_size, sampler=sampler, **kwargs)
        return DataLoader(data, batch_size=self.batch_size, shuffle=True, **kwargs)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
