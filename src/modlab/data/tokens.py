"""Tokenize once per (texts, tokenizer, max_length), cache on disk under a content hash, pad per batch."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

log = logging.getLogger(__name__)


def cache_key(texts: list[str], tokenizer, max_length: int) -> str:
    h = hashlib.sha256()
    h.update(tokenizer.backend_tokenizer.to_str().encode())
    h.update(f"|{max_length}|{len(texts)}|".encode())
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:24]


def tokenize(texts: list[str], tokenizer, max_length: int, cache_dir: str | Path | None = None,
             batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of all texts as one flat int32 array plus row offsets (n + 1), unpadded."""
    path = Path(cache_dir) / f"{cache_key(texts, tokenizer, max_length)}.npz" if cache_dir else None
    if path is not None and path.exists():
        with np.load(path) as cached:
            return cached["ids"], cached["offsets"]
    lengths, chunks = [], []
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length,
                            add_special_tokens=True, return_attention_mask=False)["input_ids"]
        chunks.extend(np.asarray(row, dtype=np.int32) for row in encoded)
        lengths.extend(len(row) for row in encoded)
    ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, ids=ids, offsets=offsets)
        os.replace(tmp, path)  # atomic: a concurrent run or DDP rank never reads half a file
    return ids, offsets


class TokenizedDataset(Dataset):
    """Rows of a tokenized table: (token ids, labels). Cheap __getitem__: a slice, no tokenizer call."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> None:
        self.ids, self.offsets, self.rows, self.labels = ids, offsets, rows, labels

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> np.ndarray:
        return (self.offsets[self.rows + 1] - self.offsets[self.rows]).astype(np.int64)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        row = self.rows[i]
        return self.ids[self.offsets[row]:self.offsets[row + 1]], self.labels[row], int(row)


class PadCollator:
    """Pad a batch to its own longest item (dynamic padding), not to max_length."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[tuple[np.ndarray, np.ndarray, int]]) -> dict[str, torch.Tensor]:
        longest = max(len(ids) for ids, _, _ in batch)
        input_ids = torch.full((len(batch), longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for i, (ids, _, _) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.from_numpy(ids.astype(np.int64))
            attention_mask[i, : len(ids)] = 1
        labels = torch.from_numpy(np.stack([lab for _, lab, _ in batch]))
        rows = torch.tensor([row for _, _, row in batch], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "rows": rows}


class LengthGroupedSampler(Sampler[int]):
    """Shuffled order in which neighbouring items have similar lengths, so batches carry little padding.

    Shuffle, cut into mega-batches of `batch_size * mega`, sort each by length, then shuffle the batches.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int = 0, mega: int = 50) -> None:
        self.lengths, self.batch_size, self.seed, self.mega, self.epoch = lengths, batch_size, seed, mega, 0

    def __len__(self) -> int:
        return len(self.lengths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        order = rng.permutation(len(self.lengths))
        size = self.batch_size * self.mega
        groups = [order[i:i + size] for i in range(0, len(order), size)]
        groups = [g[np.argsort(-self.lengths[g], kind="stable")] for g in groups]
        batches = [b for g in groups for b in np.array_split(g, max(1, -(-len(g) // self.batch_size)))]
        for j in rng.permutation(len(batches)):
            yield from batches[j].tolist()
