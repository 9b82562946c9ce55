"""Tokenize once per (texts, tokenizer, max_length), cache on disk under a content hash, pad per batch.

The cache key hashes the tokenizer (its full serialized definition), max_length and every text, so a run, a
re-run and every sweep trial on the same data share one tokenization, and any change to any of them (an
edited row, another tokenizer) makes a new one. Entries are written atomically and are safe to delete.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from modlab.io import atomic_path

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
# Each ASCII byte's part in BertPreTokenizer: 0 splits (whitespace), 1 joins a word (letters, digits), 2 is a piece of
# its own (punctuation: every other printable character). Control characters never reach it (CONTROL).
KIND = np.full(256, 2, dtype=np.int8)
KIND[[9, 10, 11, 12, 13, 32]] = 0
KIND[np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", np.uint8)] = 1


MAX_WORDS = 1 << 20  # distinct words a WordCache holds (~150 MB) before it starts afresh


def _segments(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices starts[0] .. starts[0] + lengths[0] - 1, then those of the second segment, and so on."""
    ends = np.cumsum(lengths)
    return np.arange(ends[-1] if len(ends) else 0) + np.repeat(starts - (ends - lengths), lengths)


class _Index(dict):
    """word -> its number; a word seen for the first time gets the next one and waits in `new` to be encoded."""

    def __init__(self) -> None:
        super().__init__()
        self.new: list[str] = []

    def __missing__(self, word: str) -> int:
        number = self[word] = len(self)
        self.new.append(word)
        return number


class WordCache:
    """ASCII texts -> ids through a memo of each word's ids: exact for BertNormalizer + BertPreTokenizer + WordPiece.

    On ASCII text without control characters, BertNormalizer only lower-cases, BertPreTokenizer cuts at whitespace
    and isolates every punctuation character, and WordPiece encodes each of those pieces on its own. So a text's ids
    are its pieces' ids one after the other, truncated, between the special tokens. The pieces are cut with numpy
    over a batch's bytes, every distinct piece is encoded once, by the tokenizer itself, and the ids are gathered
    with numpy. The Rust backend has no such memo: 65-90 us per civil_comments text on both cores, 2.4x this path's
    time (EXPERIMENTS.md, "A memo of word ids"). Texts holding an added token's text ([CLS], <s>, ...) are not for
    this path: the tokenizer matches those before it normalizes.
    """

    def __init__(self, twin, lowercase: bool, prefix: list[int], suffix: list[int], max_length: int,
                 side: str, added: list[str]) -> None:
        self.twin, self.lowercase, self.side = twin, lowercase, side
        self.prefix, self.suffix = np.asarray(prefix, np.int64), np.asarray(suffix, np.int64)
        self.budget = max_length - len(prefix) - len(suffix)  # what truncation leaves for the text's own ids
        self.added = [token.lower() for token in added]
        self.unsafe = re.compile("|".join([CONTROL.pattern, *map(re.escape, added)]), re.IGNORECASE)
        self.forget()

    def forget(self) -> None:
        """Start an empty memo."""
        self.index = _Index()
        self.start, self.count, self.ids = (np.zeros(0, np.int64) for _ in range(3))
        self.stored = 0

    @classmethod
    def build(cls, backend, max_length: int, side: str) -> WordCache | None:
        """For a BERT-style pipeline (BERT, MiniLM, mpnet, DistilBERT), else None."""
        from tokenizers import Tokenizer, normalizers

        definition = _definition(backend)
        spec = json.loads(definition)
        normalizer = spec.get("normalizer") or {}
        # BertPreTokenizer splits at every whitespace, so clean_text's mapping of \t \n \r to spaces is moot
        if (normalizer.get("type"), (spec.get("pre_tokenizer") or {}).get("type"), spec["model"].get("type")) != (
                "BertNormalizer", "BertPreTokenizer", "WordPiece"):
            return None
        twin = Tokenizer.from_str(definition)  # without truncation or padding: a word's ids are never cut
        twin.normalizer = normalizers.Lowercase() if normalizer.get("lowercase") else normalizers.Sequence([])
        inner, full = (twin.encode("a", add_special_tokens=special).ids for special in (False, True))
        at = next((i for i in range(len(full) - len(inner) + 1) if full[i : i + len(inner)] == inner), None)
        if at is None or max_length <= len(full) - len(inner):  # a post-processor that is not "specials, text, specials"
            return None
        return cls(twin, bool(normalizer.get("lowercase")), full[:at], full[at + len(inner) :], max_length, side,
                   [token["content"] for token in spec.get("added_tokens", [])])

    def accepts(self, texts: list[str]) -> np.ndarray:
        """Which texts this path encodes exactly: ASCII, no control characters, no added token's text."""
        ok = np.fromiter((t.isascii() for t in texts), dtype=bool, count=len(texts))  # a flag CPython keeps: O(1)
        joined = "\n".join([t for t, plain in zip(texts, ok, strict=True) if plain]).lower()
        if CONTROL.search(joined) or any(token in joined for token in self.added):  # one scan of the batch, then
            ok &= np.fromiter((not self.unsafe.search(t) for t in texts), dtype=bool, count=len(texts))  # per text
        return ok

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(every text's ids one after the other, int64; each text's count) for texts it `accepts`."""
        if len(self.index) > MAX_WORDS:  # bounded memory on any corpus: the common words come back within a batch
            self.forget()
        joined = " ".join(texts)  # the space keeps the last piece of a text from joining the next text's first
        if self.lowercase:
            joined = joined.lower()
        chars = np.frombuffer(joined.encode("ascii"), np.uint8)
        kind = KIND[chars]
        word, cut = kind == 1, kind == 2
        first = np.flatnonzero(cut | (word & ~np.concatenate(([False], word[:-1]))))  # where each piece starts
        text_start = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
        pieces = np.bincount(np.searchsorted(text_start, first, side="right") - 1, minlength=len(texts))
        spaced = np.full(len(chars) + 2 * int(cut.sum()), 32, np.uint8)  # " p " for every punctuation byte p, so
        spaced[np.arange(len(chars)) + 2 * np.cumsum(cut) - cut] = chars  # str.split cuts the pieces, in order
        words = spaced.tobytes().decode("ascii").split()
        number = np.fromiter(map(self.index.__getitem__, words), dtype=np.int64, count=len(words))
        self._learn()
        count = self.count[number]
        every = self.ids[_segments(self.start[number], count)]  # all pieces' ids, text after text
        ends = np.concatenate(([0], np.cumsum(count)))[np.cumsum(pieces)]
        total = np.diff(ends, prepend=0)
        body = np.minimum(total, self.budget)
        kept = every[_segments(ends - total if self.side == "right" else ends - body, body)]
        lengths = body + len(self.prefix) + len(self.suffix)
        at = np.cumsum(lengths) - lengths
        out = np.empty(int(lengths.sum()), np.int64)
        out[_segments(at + len(self.prefix), body)] = kept
        for j, token in enumerate(self.prefix):
            out[at + j] = token
        for j, token in enumerate(self.suffix):
            out[at + len(self.prefix) + body + j] = token
        return out, lengths

    def _learn(self) -> None:
        """Encode the words met for the first time and store their ids."""
        new, self.index.new = self.index.new, []
        if not new:
            return
        # A few long pre-tokenized sequences, not one Encoding per word: each word is still encoded on its own,
        # and word_ids says which word each id belongs to.
        step = max(256, -(-len(new) // 16))
        chunks = [new[i : i + step] for i in range(0, len(new), step)]
        encoded = self.twin.encode_batch(chunks, is_pretokenized=True, add_special_tokens=False)  # _fast has no word_ids
        flat = np.concatenate([np.asarray(e.ids, np.int64) for e in encoded])
        count = np.concatenate([np.bincount(e.word_ids, minlength=len(c)) for e, c in zip(encoded, chunks, strict=True)])
        known = len(self.index) - len(new)  # the new words' numbers follow
        self.start, self.count = _grow(self.start, len(self.index)), _grow(self.count, len(self.index))
        self.start[known : len(self.index)] = self.stored + np.cumsum(count) - count
        self.count[known : len(self.index)] = count
        self.ids = _grow(self.ids, self.stored + len(flat))
        self.ids[self.stored : self.stored + len(flat)] = flat
        self.stored += len(flat)


def _grow(array: np.ndarray, size: int) -> np.ndarray:
    """`array`, or a copy with room for at least `size` items (doubling, so appends cost O(1) on average)."""
    if size <= len(array):
        return array
    grown = np.empty(max(size, 2 * len(array)), array.dtype)
    grown[: len(array)] = array
    return grown


class Encoder:
    """texts -> the ids `tokenizer(texts, truncation=True, max_length=max_length)` gives (special tokens included).

    A fast tokenizer is called through its Rust backend without offsets (the transformers call also builds
    offsets and a BatchEncoding). For a BERT-style pipeline (BERT, MiniLM, mpnet, DistilBERT), ASCII texts go
    through a WordCache instead. Tests check the ids are the same as the transformers call's.
    """

    def __init__(self, tokenizer, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, int(max_length)
        self.backend = tokenizer.backend_tokenizer if getattr(tokenizer, "is_fast", False) else None
        self.words = None if self.backend is None else WordCache.build(self.backend, self.max_length,
                                                                       self.tokenizer.truncation_side)

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(every text's ids one after the other, int64; each text's count)."""
        accept = np.zeros(len(texts), bool) if self.words is None else self.words.accepts(texts)
        if accept.all() and texts:
            return self.words(texts)
        parts = []
        if (plain := np.flatnonzero(accept)).size:
            parts.append((plain, *self.words([texts[i] for i in plain])))
        if (rest := np.flatnonzero(~accept)).size:
            rows = self._encode([texts[i] for i in rest])
            count = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
            parts.append((rest, np.fromiter(itertools.chain.from_iterable(rows), np.int64, int(count.sum())), count))
        lengths = np.zeros(len(texts), np.int64)
        for index, _, count in parts:
            lengths[index] = count
        at = np.cumsum(lengths) - lengths
        out = np.empty(int(lengths.sum()), np.int64)
        for index, ids, count in parts:
            out[_segments(at[index], count)] = ids
        return out, lengths

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if self.backend is None:
            return self.tokenizer(texts, truncation=True, max_length=self.max_length, add_special_tokens=True,
                                  return_attention_mask=False, return_token_type_ids=False)["input_ids"]
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
            ids, counts = encode(texts[start : start + batch_size])
            chunks.append(ids.astype(dtype))
            lengths.append(counts)
    ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths) if lengths else [], dtype=np.int64)])
    offsets = offsets.astype(np.int64)
    if path is not None:
        # streamed into a temporary file that is renamed when complete: a concurrent run or DDP rank never reads
        # half a file, and no second copy of the arrays is made in memory
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, ids=ids, offsets=offsets)
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
