"""The read-table cache: a hit gives back the same table; any change to the files, the reader's options or a
broken entry means reading the source again; readers that are not modlab's file readers are never cached."""

from __future__ import annotations

import functools
import logging
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import JIGSAW_SAMPLE, SHARED_DATA

from modlab.data import civil_comments, jigsaw, jsonl, synthetic, table_cache
from modlab.data.table import LabeledTable

CIVIL = SHARED_DATA / "civil_comments-identities" / "train.csv"


def same(a: LabeledTable, b: LabeledTable) -> None:
    assert a.ids == b.ids and a.texts == b.texts and a.label_names == b.label_names and a.source == b.source
    np.testing.assert_array_equal(a.labels, b.labels)
    assert (a.split is None) == (b.split is None)
    if a.split is not None:
        assert a.split.tolist() == b.split.tolist()
    assert (a.meta is None) == (b.meta is None)
    if a.meta is not None:
        pd.testing.assert_frame_equal(a.meta, b.meta, check_dtype=False)


def entries(cache) -> list[str]:
    return sorted(p.name for p in cache.glob("table-*.arrow"))


def counted(reader):
    """The reader, counting its calls."""
    calls = []

    @functools.wraps(reader.func)
    def call(**kwargs):
        calls.append(1)
        return reader.func(**kwargs)

    wrapped = functools.partial(call, **reader.keywords)
    wrapped.func.__module__ = reader.func.__module__
    return wrapped, calls


def sources(tmp_path):
    jsonl_file = tmp_path / "rows.jsonl"
    jsonl.write(synthetic.generate(size=200, seed=1), jsonl_file)
    found = [functools.partial(jsonl.read, path=str(jsonl_file))]
    if JIGSAW_SAMPLE.is_dir():
        found.append(functools.partial(jigsaw.read, path=str(JIGSAW_SAMPLE)))
    if CIVIL.is_file():
        found.append(functools.partial(civil_comments.read, path=str(CIVIL)))
    return found


def test_a_hit_is_the_same_table_without_reading_the_source(tmp_path):
    cache = tmp_path / "cache"
    for reader in sources(tmp_path):
        fresh = reader()
        first = table_cache.read(reader, cache)
        wrapped, calls = counted(reader)
        again = table_cache.read(wrapped, cache)
        assert calls == [], f"{reader.func.__module__} read its source again"
        same(fresh, first)
        same(fresh, again)
    assert len(entries(cache)) == len(sources(tmp_path))


def test_changed_files_or_options_miss_and_a_broken_entry_is_read_again(tmp_path, caplog):
    cache = tmp_path / "cache"
    source = tmp_path / "rows.jsonl"
    jsonl.write(synthetic.generate(size=100, seed=2), source)
    reader = functools.partial(jsonl.read, path=str(source))
    table_cache.read(reader, cache)
    (before,) = entries(cache)

    lines = source.read_text().splitlines(keepends=True)
    source.write_text("".join(lines[:-1]))  # a row removed
    assert len(table_cache.read(reader, cache)) == 99 and len(entries(cache)) == 2
    strict = functools.partial(jsonl.read, path=str(source), empty_text="error")  # another option: another entry
    assert len(table_cache.read(strict, cache)) == 99 and len(entries(cache)) == 3

    broken = cache / before
    source.write_text("".join(lines))  # back to the first content: its entry, truncated
    broken.write_bytes(broken.read_bytes()[:100])
    with caplog.at_level(logging.WARNING):
        table = table_cache.read(reader, cache)
    assert len(table) == 100 and "unreadable" in caplog.text
    same(table_cache.read(reader, cache), reader())  # rewritten whole
    assert not list(cache.glob(".*.tmp"))


@pytest.mark.parametrize("reader", [
    functools.partial(synthetic.generate, size=50, seed=0),  # generated, no files
    functools.partial(lambda path: synthetic.generate(size=20, seed=0), path="."),  # a user's own reader
])
def test_only_modlab_file_readers_are_cached(tmp_path, reader):
    assert len(table_cache.read(reader, tmp_path / "cache")) > 0
    assert not (tmp_path / "cache").exists() or entries(tmp_path / "cache") == []


def test_a_table_arrow_cannot_hold_is_returned_uncached(tmp_path, caplog):
    """meta with a column of mixed Python objects: Arrow refuses it; the run gets its table all the same."""
    source = tmp_path / "rows.jsonl"
    jsonl.write(synthetic.generate(size=30, seed=3), source)
    plain = functools.partial(jsonl.read, path=str(source))

    def odd_meta(**kwargs):
        table = plain(**kwargs)
        table.meta = pd.DataFrame({"mixed": [object()] * len(table)})
        return table

    odd = functools.partial(odd_meta, path=str(source))
    odd.func.__module__ = "modlab.data.jsonl"
    with caplog.at_level(logging.WARNING):
        table = table_cache.read(odd, tmp_path / "cache")
    assert len(table) == 30 and "not written" in caplog.text
    assert entries(tmp_path / "cache") == [] and not list((tmp_path / "cache").glob(".*.tmp"))


@pytest.mark.skipif(not CIVIL.is_file(), reason="needs ../shared/data/civil_comments-identities")
def test_a_hit_owns_its_memory_when_the_entry_is_truncated_afterwards(tmp_path):
    """The entry is mapped while it is read; the table must not keep a view of it (a truncated file would
    crash the process that touches such a view, with SIGBUS). In a child, so that a crash fails this test."""
    script = f"""
import functools, os
from pathlib import Path
import numpy as np
from modlab.data import civil_comments, table_cache
reader = functools.partial(civil_comments.read, path={str(CIVIL)!r})
cache = Path({str(tmp_path / "cache")!r})
table_cache.read(reader, cache)
hit = table_cache.read(reader, cache)
(entry,) = cache.glob("table-*.arrow")
os.truncate(entry, 0)
assert hit.meta is not None and hit.labels.shape[1] > 0
print(float(np.nansum(hit.labels)), float(np.nansum(hit.meta.to_numpy())), sum(map(len, hit.texts)), len(hit.ids))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    labels, meta, chars, rows = done.stdout.split()
    fresh = civil_comments.read(path=str(CIVIL))
    assert float(labels) == pytest.approx(float(np.nansum(fresh.labels)))
    assert float(meta) == pytest.approx(float(np.nansum(fresh.meta.to_numpy())))
    assert int(chars) == sum(map(len, fresh.texts)) and int(rows) == len(fresh)
