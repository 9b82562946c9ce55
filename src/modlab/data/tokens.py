"""Tokenize once per (texts, tokenizer, max_length), cache on disk under a content hash, pad per batch.

The cache key hashes the tokenizer (its full serialized definition), max_length and every text, so a run, a
re-run and every sweep trial on the same data share one tokenization, and any change to any of them (an
edited row, another tokenizer) makes a new one. Entries are written atomically and are safe to delete.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from modlab.io import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT = "v2"  # bump when the cached arrays change meaning


def _definition(backend) -> str:
    """The fast tokenizer's JSON without its truncation/padding state, which every call sets anew
    (max_length is part of the key on its own). Cleared for the moment of serializing, then restored."""
    truncation, padding = backend.truncation, backend.padding
    backend.no_truncation()
    backend.no_padding()
    try:
        return backend.to_str()
    finally:
        if truncation:
            backend.enable_truncation(**truncation)
        if padding:
            backend.enable_padding(**padding)


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of everything that decides token ids: the fast tokenizer's serialized pipeline, or the vocab."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(_definition(backend).encode())
    else:  # a slow (pure Python) tokenizer
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
        h.update(json.dumps(getattr(tokenizer, "init_kwargs", {}), sort_keys=True, default=str).encode())
    h.update(json.dumps(tokenizer.all_special_tokens).encode())
    return h.hexdigest()


def cache_key(texts: list[str], tokenizer, max_length: int, chunk: int = 65536) -> str:
    h = hashlib.sha256(f"{FORMAT}|{tokenizer_fingerprint(tokenizer)}|{max_length}|{len(texts)}|".encode())
    h.update(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)).tobytes())
    for start in range(0, len(texts), chunk):  # in pieces: one joined copy of a million texts is GBs
        if start:
            h.update(b"\x00")
        h.update("\x00".join(texts[start : start + chunk]).encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]


def _load(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as cached:  # a cache file never holds objects
            return cached["ids"], cached["offsets"]
    except FileNotFoundError:
        return None
    except Exception as err:  # a truncated or foreign file: re-tokenize and overwrite it
        log.warning("token cache %s is unreadable (%s); tokenizing again", path, err)
        return None


@contextlib.contextmanager
def all_cores():
    """The fast tokenizer's batch calls run on every core for as long as this lasts. The `modlab` entry points
    set TOKENIZERS_PARALLELISM=false so that forked DataLoader workers never inherit a used thread pool (and
    warn); the variable is read at every call, so it is lifted here and set back before any fork."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    try:
        yield
    finally:
        os.environ["TOKENIZERS_PARALLELISM"] = "false" if before is None else before


# ASCII control characters that BertNormalizer's clean_text deletes (tab, line feed and carriage return it keeps).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Encoder:
    """texts -> the ids `tokenizer(texts, truncation=True, max_length=max_length)` gives (special tokens included).

    A fast tokenizer is called through its Rust backend without offsets (the transformers call also builds
    offsets and a BatchEncoding). For BertNormalizer + BertPreTokenizer (BERT, MiniLM, mpnet, DistilBERT), ASCII texts
    without control characters go through a twin whose normalizer is only its lower-casing: on such text,
    accent stripping, CJK spacing and control-character cleaning change nothing, and they are a third of the
    encode time. Together 1.8x faster than the transformers call on civil_comments texts (EXPERIMENTS.md,
    "Reading and tokenizing faster"); a test checks the ids are the same.
    """

    def __init__(self, tokenizer, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, int(max_length)
        self.backend = tokenizer.backend_tokenizer if getattr(tokenizer, "is_fast", False) else None
        self.twin = self._ascii_twin() if self.backend is not None else None

    def _ascii_twin(self):
        from tokenizers import Tokenizer, normalizers

        definition = self.backend.to_str()
        spec = json.loads(definition)
        normalizer = spec.get("normalizer") or {}
        # BertPreTokenizer splits at every whitespace, so clean_text's mapping of \t \n \r to spaces is moot
        if normalizer.get("type") != "BertNormalizer" or (spec.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer":
            return None
        twin = Tokenizer.from_str(definition)
        twin.normalizer = normalizers.Lowercase() if normalizer.get("lowercase") else normalizers.Sequence([])
        twin.no_padding()
        twin.enable_truncation(self.max_length, direction=self.tokenizer.truncation_side)
        return twin

    def __call__(self, texts: list[str]) -> list[list[int]]:
        if self.backend is None:
            return self.tokenizer(texts, truncation=True, max_length=self.max_length, add_special_tokens=True,
                                  return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        plain = [] if self.twin is None else [i for i, t in enumerate(texts) if t.isascii() and not CONTROL.search(t)]
        ids: list = [None] * len(texts)
        if plain:
            for i, e in zip(plain, self.twin.encode_batch_fast([texts[i] for i in plain], add_special_tokens=True),
                            strict=True):
                ids[i] = e.ids
        rest = [i for i, row in enumerate(ids) if row is None]
        if rest:
            for i, row in zip(rest, self._encode([texts[i] for i in rest]), strict=True):
                ids[i] = row
        return ids

    def _encode(self, texts: list[str]) -> list[list[int]]:
        backend = self.backend
        truncation, padding = backend.truncation, backend.padding
        backend.enable_truncation(self.max_length, direction=self.tokenizer.truncation_side)
        backend.no_padding()  # the collator pads each batch to its own longest text
        try:
            return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=True)]
        finally:  # the tokenizer's own state, as transformers left it
            if truncation:
                backend.enable_truncation(**truncation)
            else:
                backend.no_truncation()
            if padding:
                backend.enable_padding(**padding)


def tokenize(
    texts: list[str], tokenizer, max_length: int, cache_dir: str | Path | None = None, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of all texts as one flat array plus row offsets (n + 1), unpadded, with special tokens.

    Batched through the (fast) tokenizer; ids are stored as uint16 when the vocabulary fits, else int32.
    """
    path = Path(cache_dir) / f"tokens-{cache_key(texts, tokenizer, max_length)}.npz" if cache_dir else None
    if path is not None and (cached := _load(path)) is not None:
        log.info("token cache hit: %s", path)
        return cached
    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.int32
    # Each batch becomes arrays at once, so the Python lists of one batch are all that is ever alive.
    lengths, chunks = [], []
    encode = Encoder(tokenizer, max_length)
    with all_cores():
        for start in range(0, len(texts), batch_size):
            encoded = encode(texts[start : start + batch_size])
            counts = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
            chunks.append(np.fromiter(itertools.chain.from_iterable(encoded), dtype=dtype, count=int(counts.sum())))
            lengths.append(counts)
    ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths) if lengths else [], dtype=np.int64)])
    offsets = offsets.astype(np.int64)
    if path is not None:
        buffer = io.BytesIO()
        np.savez(buffer, ids=ids, offsets=offsets)
        atomic_write_bytes(path, buffer.getvalue())  # a concurrent run or DDP rank never reads half a file
        log.info("token cache written: %s (%d texts, %d tokens)", path, len(texts), len(ids))
    return ids, offsets


class TokenizedDataset(Dataset):
    """Rows of a tokenized table: (token ids, labels, row). Cheap __getitem__: a slice, no tokenizer call."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> None:
        self.ids, self.offsets, self.rows, self.labels = ids, offsets, rows, labels

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> np.ndarray:
        return (self.offsets[self.rows + 1] - self.offsets[self.rows]).astype(np.int64)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        row = self.rows[i]
        return self.ids[self.offsets[row] : self.offsets[row + 1]], self.labels[row], int(row)


class PadCollator:
    """Pad a batch to its own longest item (dynamic padding), not to max_length.

    `pad_to_multiple_of` rounds that length up (8 suits tensor cores); None keeps it exact.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id, self.multiple = pad_token_id, pad_to_multiple_of

    def __call__(self, batch: list[tuple[np.ndarray, np.ndarray, int]]) -> dict[str, torch.Tensor]:
        longest = max(len(ids) for ids, _, _ in batch)
        if self.multiple:
            longest = -(-longest // self.multiple) * self.multiple
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

    Shuffle, cut into mega-batches of `batch_size * mega`, sort each by length, cut into batches, then
    shuffle the batches. Every batch but the last is full, so a DataLoader with the same batch_size sees
    exactly these batches.

    The order is a function of (seed, epoch) only (`order(epoch)`): the same seed gives the same orders, and
    a run resumed from a checkpoint the orders of the run that never stopped, because Lightning calls
    `set_epoch(epoch)` before every epoch, the first after a resume included (the epoch counted in the
    checkpoint, not from 0). Without set_epoch (a plain loop) each iteration moves on to the next epoch.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int = 0, mega: int = 50) -> None:
        self.lengths, self.batch_size, self.seed, self.mega, self.epoch = lengths, batch_size, seed, mega, 0

    def __len__(self) -> int:
        return len(self.lengths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1  # taken when iteration starts, not at its first item
        return iter(self.order(epoch))

    def order(self, epoch: int) -> list[int]:
        """The indices of epoch `epoch`; nothing but (seed, epoch) decides them."""
        rng = np.random.default_rng((self.seed, epoch))
        order = rng.permutation(len(self.lengths))
        size = self.batch_size * self.mega
        groups = [order[i : i + size] for i in range(0, len(order), size)]
        groups = [g[np.argsort(-self.lengths[g], kind="stable")] for g in groups]
        b = self.batch_size
        full = [g[i : i + b] for g in groups for i in range(0, len(g) - b + 1, b)]
        # Each group's remainder, pooled and sorted, makes more full batches and at most one short one, last.
        rest = np.concatenate([g[len(g) - len(g) % b :] for g in groups] + [order[:0]])
        rest = rest[np.argsort(-self.lengths[rest], kind="stable")]
        full += [rest[i : i + b] for i in range(0, len(rest) - b + 1, b)]
        batches = [full[j] for j in rng.permutation(len(full))] + [rest[len(rest) - len(rest) % b :]]
        return np.concatenate(batches).tolist()


class LengthSortedSampler(Sampler[int]):
    """Longest first, for evaluation: batches of similar lengths and any out-of-memory shows at once."""

    def __init__(self, lengths: np.ndarray) -> None:
        self.order = np.argsort(-np.asarray(lengths), kind="stable")

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        yield from self.order.tolist()
