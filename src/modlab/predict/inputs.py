"""Texts to score, read in chunks of rows: CSV, JSONL or plain text (one text per line), from a file or stdin.

Memory stays constant whatever the file's size: a CSV goes through pandas' chunked reader, JSONL and text
line by line. The text column defaults to what the dataset readers read: `comment_text` (Jigsaw and
Civil Comments CSVs) else `text` (civil_comments exports, the jsonl reader); the id column to `id`, and
rows without one are numbered (data row for a CSV, line for JSONL and text). Bytes that are not UTF-8
stop the run with the line they are on.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modlab.data import sources
from modlab.data.sources import fail
from modlab.errors import ModlabError

FORMATS = ("csv", "jsonl", "text")
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
TEXT_COLUMNS = ("comment_text", "text")
ID_COLUMN = "id"
STDIN = "-"


@dataclass(frozen=True)
class Chunk:
    ids: list[str]
    texts: list[str]
    position: int  # bytes of the input read so far (for progress); 0 when unknown


def input_format(path: str, given: str | None) -> str:
    if given is not None:
        if given not in FORMATS:
            raise ModlabError(f"--input-format {given!r} is not one of {', '.join(FORMATS)}")
        return given
    return "text" if path == STDIN else SUFFIXES.get(Path(path).suffix.lower(), "text")


def _decoded_lines(stream, where: str) -> Iterator[tuple[int, str, int]]:
    """(line number, text without its line break, bytes read) of a binary stream, strictly UTF-8."""
    position = 0
    for number, raw in enumerate(stream, start=1):
        position += len(raw)
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a BOM is not part of the first text
            raw = raw[3:]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            bad = raw[err.start : err.start + 2].hex(" ")
            raise fail(f"{where}: line {number}, byte {err.start + 1}", f"bytes {bad} are not valid UTF-8",
                       "re-save the input as UTF-8 (e.g. `iconv -f cp1252 -t utf-8 in > out`)") from None
        yield number, line.rstrip("\r\n"), position


def _chunks_of(rows: Iterator[tuple[str, str, int]], size: int) -> Iterator[Chunk]:
    ids, texts, position = [], [], 0
    for key, text, position in rows:
        ids.append(key)
        texts.append(text)
        if len(ids) == size:
            yield Chunk(ids, texts, position)
            ids, texts = [], []
    if ids:
        yield Chunk(ids, texts, position)


def _text_rows(stream, where: str) -> Iterator[tuple[str, str, int]]:
    for number, line, position in _decoded_lines(stream, where):
        yield str(number), line, position


def _jsonl_rows(stream, where: str, text_column: str | None, id_column: str) -> Iterator[tuple[str, str, int]]:
    column = text_column or "text"
    for number, line, position in _decoded_lines(stream, where):
        if not line.strip():
            continue
        at = f"{where}: line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise fail(at, f"not valid JSON ({err.msg} at column {err.colno})", "fix the line (one object per line)") \
                from None
        if not isinstance(record, dict):
            raise fail(at, f"a JSON {type(record).__name__}, not an object", f'write {{"{column}": "..."}} per line')
        if column not in record:
            if text_column is None and "comment_text" in record:
                column = "comment_text"
            else:
                keys = ", ".join(list(record)[:8])
                raise fail(at, f"no {column!r} field (keys: {keys})", "set --text-column to the field holding the text")
        text = record[column]
        if text is not None and not isinstance(text, str):
            raise fail(at, f"{column!r} is a {type(text).__name__}, not a string", "write the text as a string")
        key = record.get(id_column)
        yield (str(key) if key is not None else str(number)), text or "", position


def _csv_chunks(path: Path, text_column: str | None, id_column: str, size: int) -> Iterator[Chunk]:
    import pandas as pd

    header = sources.csv_header(path)
    column = text_column or next((c for c in TEXT_COLUMNS if c in header), None)
    if column is None or column not in header:
        shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
        wanted = repr(column) if column else " or ".join(repr(c) for c in TEXT_COLUMNS)
        raise fail(path, f"no text column {wanted} (the header has: {shown})",
                   "set --text-column to the column holding the texts")
    has_id = id_column in header
    number = 0
    with open(path, "rb") as f:
        try:
            # The header's own names (stripped), so a padded "comment_text " is found like the readers find it.
            reader = pd.read_csv(f, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig",
                                 engine="c", chunksize=size, header=0, names=header)
            for frame in reader:
                texts = frame[column].tolist()
                ids = frame[id_column].tolist() if has_id else [str(number + i + 1) for i in range(len(frame))]
                number += len(frame)
                yield Chunk(ids, texts, f.tell())
        except UnicodeDecodeError:
            raise sources.utf8_error(path) from None
        except pd.errors.ParserError as err:
            raise sources.csv_parse_error(path, str(err).replace("Error tokenizing data. C error: ", "")) from None


def read_chunks(path: str, fmt: str, text_column: str | None, id_column: str = ID_COLUMN,
                size: int = 2048) -> Iterator[Chunk]:
    """Chunks of (ids, texts) of `path` (a file or "-" for stdin) in `fmt` (see input_format)."""
    if path == STDIN:
        if fmt == "csv":
            raise ModlabError("--input - (stdin) reads plain text or JSONL; save a CSV to a file and pass its path")
        stream = sys.stdin.buffer
        rows = _text_rows(stream, "stdin") if fmt == "text" else _jsonl_rows(stream, "stdin", text_column, id_column)
        yield from _chunks_of(rows, size)
        return
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModlabError(f"--input {path} {'is a directory' if file.is_dir() else 'does not exist'}; "
                          f"pass a CSV, JSONL or text file, or - for stdin")
    if fmt == "csv":
        yield from _csv_chunks(file, text_column, id_column, size)
        return
    with open(file, "rb") as stream:
        rows = _text_rows(stream, str(file)) if fmt == "text" else _jsonl_rows(stream, str(file), text_column,
                                                                                 id_column)
        yield from _chunks_of(rows, size)
