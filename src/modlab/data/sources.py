"""Shared reader plumbing: find files, parse CSV/JSONL/Parquet, and fail loudly with one actionable line.

Every error names the file, the row (1-based data row, with its physical line where it differs) or the
column, and the fix, e.g.

    /data/train.csv: row 17 (line 42, id '0002bcb3'): column 'threat' is '2', not 0 or 1; fix the value
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from modlab.data.table import SPLITS
from modlab.errors import ModlabError

log = logging.getLogger(__name__)

EMPTY_TEXT_POLICIES = ("drop", "error")
# Split names users put in file names or `split` fields, mapped to ours.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def fail(where: str | Path, problem: str, fix: str) -> ModlabError:
    """The one-line error: `<where>: <problem>; <fix>` (newlines in values are escaped)."""
    return ModlabError(f"{where}: {problem}; {fix}".replace("\r", "\\r").replace("\n", "\\n"))


def short(value, limit: int = 40) -> str:
    """A cell value quoted and cut for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


# --- paths -----------------------------------------------------------------------------------------------


def require_path(path, dataset: str, expects: str) -> Path:
    """`dataset.path` as an existing Path, or one line saying what the dataset expects there."""
    if path is None or str(path).strip() in ("", "None", "null"):
        raise ModlabError(f"dataset={dataset} needs dataset.path; set dataset.path=<{expects}>")
    found = Path(str(path)).expanduser()
    if not found.exists():
        parent = found.parent if found.parent.exists() else None
        near = ""
        if parent is not None:
            names = sorted(p.name for p in parent.iterdir())[:8]
            near = f" ({parent} holds: {', '.join(names) or 'nothing'})"
        raise ModlabError(f"dataset.path={path} does not exist{near}; point dataset.path at {expects}")
    return found


def require_file(path: Path, dataset: str, expects: str) -> Path:
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ModlabError(f"{path} {what}; dataset={dataset} expects {expects}")
    return path


# --- encodings -------------------------------------------------------------------------------------------


def utf8_error(path: Path) -> ModlabError:
    """Locate the first line that is not UTF-8 and say how to fix the file."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                bad = raw[err.start : err.start + 2].hex(" ")
                return fail(
                    f"{path}: line {number}, byte {err.start + 1}",
                    f"bytes {bad} are not valid UTF-8",
                    f"re-save the file as UTF-8 (e.g. `iconv -f cp1252 -t utf-8 {path.name} > fixed`)",
                )
    return fail(path, "the file is not valid UTF-8", "re-save the file as UTF-8")


# --- CSV -------------------------------------------------------------------------------------------------


def csv_header(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    if not header:
        raise fail(
            path, "the file is empty (no header row)", "point dataset.path at a CSV with a header and rows"
        )
    return [h.strip() for h in header]


def _csv_records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, fields) of every record, strict about quoting."""
    csv.field_size_limit(1 << 30)
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, strict=True)
        start = 1
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise fail(
                    f"{path}: line {start}",
                    f"malformed CSV quoting ({err})",
                    'close the quoted field that starts here and write quotes inside a field as ""',
                ) from None
            yield start, record
            start = reader.line_num + 1


def csv_parse_error(path: Path, detail: str) -> ModlabError:
    """Re-scan strictly to turn a parser failure into the exact line and the fix."""
    return strict_csv_problem(path) or fail(path, f"malformed CSV ({detail})",
                                            "check the quoting of the rows around that place")


def strict_csv_problem(path: Path) -> ModlabError | None:
    """The first problem the csv module's strict reading finds (quoting, a row's field count, bytes that are
    not UTF-8), or None. Stricter than the fast parsers, which read `"abc"d` as `abcd` without a word."""
    header = None
    try:
        for line, record in _csv_records(path):
            if header is None:
                header = record
            elif len(record) != len(header):
                return fail(
                    f"{path}: line {line}",
                    f"the row has {len(record)} fields but the header has {len(header)}",
                    "quote fields that contain commas, quotes or line breaks (RFC 4180), or fix the row",
                )
    except ModlabError as err:
        return err
    except UnicodeDecodeError:
        return utf8_error(path)
    return None


def csv_line_of_row(path: Path, row: int) -> int | None:
    """Physical line where 0-based data row `row` starts (quoted fields can span lines)."""
    for i, (line, _) in enumerate(_csv_records(path)):
        if i == row + 1:
            return line
    return None


def read_csv(path: Path, required: Sequence[str], fix: str) -> pd.DataFrame:
    """All columns as strings, exactly as quoted in the file (no NA guessing: 'NA' stays a text).

    `required` columns must be in the header; `fix` says what to do when one is not. Arrow's multi-threaded
    parser reads the file while the csv module's strict scan checks it in a second thread (Arrow releases the
    GIL): 1M civil_comments rows in a third of the time pandas' parser and a scan after it took.
    """
    header = csv_header(path)
    missing = [c for c in required if c not in header]
    if missing:
        shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
        raise fail(path, f"column {missing[0]!r} is missing (the header has: {shown})", fix)
    twice = next((c for i, c in enumerate(header) if c in header[:i]), None)
    if twice is not None:
        raise fail(path, f"column {twice!r} appears twice in the header", "rename or remove one of them")
    with ThreadPoolExecutor(1) as pool:
        strict = pool.submit(strict_csv_problem, path)
        try:
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(skip_rows=1, column_names=header),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.large_string()),
                                                     strings_can_be_null=False, null_values=[]),
            )
        except pa.ArrowInvalid as err:
            detail = str(err).split("\n")[0].replace("CSV parse error: ", "")
            # the strict scan names the line of anything Arrow refuses (bytes not UTF-8 included); this is the rest
            raise strict.result() or fail(path, f"malformed CSV ({detail})",
                                          "check the quoting of the rows around that place") from None
        if (problem := strict.result()) is not None:
            raise problem
    return table.to_pandas()


class Rows:
    """Names rows of a parsed file in messages: `file: row 17 (line 42, id 'abc')` or `file: line 42`.

    `lines` (JSONL) gives each row's physical line; for a CSV the line is found by a re-scan, only when an
    error is raised (quoted fields can span lines, so row and line numbers differ).
    """

    def __init__(
        self,
        path: Path,
        ids: Sequence[str] | None = None,
        lines: Sequence[int] | None = None,
        csv_file: bool = False,
    ) -> None:
        self.path, self.ids, self.lines, self.csv_file = path, ids, lines, csv_file

    def __call__(self, i: int, exact: bool = True) -> str:
        return f"{self.path}: {self.describe(i, exact)}"

    def describe(self, i: int, exact: bool = True) -> str:
        """`row 17 (line 42, id 'abc')` without the file."""
        ident = f"id {short(self.ids[i])}" if self.ids is not None else None
        if self.lines is not None:
            return f"line {self.lines[i]}" + (f" ({ident})" if ident else "")
        parts = []
        if self.csv_file and exact:
            line = csv_line_of_row(self.path, i)
            if line is not None and line != i + 2:
                parts.append(f"line {line}")
        if ident:
            parts.append(ident)
        return f"row {i + 1}" + (f" ({', '.join(parts)})" if parts else "")


# --- values ----------------------------------------------------------------------------------------------


def to_float(values, column: str, rows: Rows, fix: str) -> np.ndarray:
    """Numbers of a column (strings or numbers); the first empty or non-numeric cell is an error."""
    series = pd.Series(values)
    out = fast_float(series)
    if out is None:  # an empty or non-numeric cell: parsed again cell by cell, to name the first one
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            stripped = series.astype(str).str.strip()
            numbers = pd.to_numeric(stripped.where(stripped != "", None), errors="coerce")
        else:
            numbers = pd.to_numeric(series, errors="coerce")
        out = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        i = int(bad[0])
        value = series.iloc[i]
        empty = value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""
        problem = (
            f"column {column!r} is empty" if empty else f"column {column!r} is {short(value)}, not a number"
        )
        more = f" ({bad.size} such rows)" if bad.size > 1 else ""
        raise fail(rows(i), problem + more, fix)
    return out


def fast_float(series: pd.Series) -> np.ndarray | None:
    """The column as float64 in one vectorized cast (Arrow's, for text columns), or None when a cell is not a
    number; NaN and inf cells come through, for the caller to reject."""
    try:
        if series.dtype != object and pd.api.types.is_string_dtype(series.dtype):  # pandas' own cast goes via objects
            return pc.cast(pa.array(series), pa.float64()).to_numpy(zero_copy_only=False)
        return series.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError):  # pa.ArrowInvalid is a ValueError
        return None


def _reject_first_bad(bad: np.ndarray, values: np.ndarray, column: str, rows: Rows, allowed: str, fix: str) -> None:
    """One error for the first offending row, counting the others."""
    if bad.size:
        i = int(bad[0])
        more = f" ({bad.size} such rows)" if bad.size > 1 else ""
        raise fail(rows(i), f"label column {column!r} is {values[i]:g}, {allowed}{more}", fix)


def check_binary(values: np.ndarray, column: str, rows: Rows, allow_unknown: bool = False) -> np.ndarray:
    """0/1 labels (-1 = unknown where allowed), as float32."""
    ok = (values == 0) | (values == 1) | ((values == -1) if allow_unknown else False)
    allowed = "not 0, 1 or -1 (unscored)" if allow_unknown else "not 0 or 1"
    _reject_first_bad(np.flatnonzero(~ok), values, column, rows, allowed, "fix the value (labels here are 0/1)")
    return values.astype(np.float32)


def check_fraction(values: np.ndarray, column: str, rows: Rows) -> np.ndarray:
    bad = np.flatnonzero((values < 0) | (values > 1))
    _reject_first_bad(bad, values, column, rows, "outside [0, 1]", "labels here are fractions of raters; fix the value")
    return values.astype(np.float32)


def select_labels(labels, known: list[str], dataset: str) -> list[str]:
    """The configured label subset (default: all), checked against the dataset's label set."""
    if labels is None:
        return list(known)
    labels = [str(x) for x in labels]
    unknown = [x for x in labels if x not in known]
    if unknown or not labels:
        raise ModlabError(
            f"dataset.reader.labels={labels}: {unknown[0] if unknown else 'empty'} is not a "
            f"{dataset} label; choose from {', '.join(known)}"
        )
    return labels


def is_empty_text(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return not isinstance(value, str) or not value.strip()


def clean_texts(texts: Sequence, rows: Rows, column: str, policy: str, where: Path | str) -> np.ndarray:
    """Keep-mask over rows; empty/NaN texts are dropped with one counted warning, or are an error."""
    if policy not in EMPTY_TEXT_POLICIES:
        raise ModlabError(
            f"dataset.reader.empty_text={policy!r} is not a policy; use one of "
            f"{', '.join(EMPTY_TEXT_POLICIES)}"
        )
    empty = np.fromiter((is_empty_text(t) for t in texts), dtype=bool, count=len(texts))
    if not empty.any():
        return ~empty
    first = int(np.flatnonzero(empty)[0])
    if policy == "error":
        more = f" ({int(empty.sum())} such rows)" if empty.sum() > 1 else ""
        raise fail(
            rows(first),
            f"{column} is empty or NaN{more}",
            "fill or remove the row, or set dataset.reader.empty_text=drop to skip such rows",
        )
    log.warning(
        "%s: dropped %d of %d rows with empty or NaN %s (first: %s); set dataset.reader.empty_text=error "
        "to fail instead",
        where,
        int(empty.sum()),
        len(texts),
        column,
        rows.describe(first, exact=False),
    )
    return ~empty


def check_unique_ids(ids: Sequence[str], rows: Rows) -> None:
    seen: dict[str, int] = {}
    for i, key in enumerate(ids):
        j = seen.setdefault(key, i)
        if j != i:
            raise fail(
                rows(i),
                f"id {short(key)} already appears at row {j + 1}",
                "make ids unique (saved splits refer to rows by id) or remove the duplicate row",
            )


def ensure_rows(n: int, where: Path | str, after: str = "") -> None:
    if n == 0:
        raise fail(where, f"no rows left{after}", "point dataset.path at data with labelled, non-empty rows")


def split_of_name(name: str) -> str | None:
    """'train-00000-of-00002.parquet' -> 'train'; 'validation.jsonl' -> 'val'; None if it names no split."""
    stem = name.lower().split(".")[0]
    for token in stem.replace("-", "_").split("_"):
        if token in SPLIT_ALIASES:
            return SPLIT_ALIASES[token]
    return None


def by_split(paths: list[Path]) -> list[tuple[Path, str]]:
    """(file, split named in its file name, else train), train files first, then val, then test."""
    named = [(p, split_of_name(p.name) or "train") for p in paths]
    return sorted(named, key=lambda f: SPLITS.index(f[1]))


# --- JSONL -----------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of every non-blank line; a line that is not a JSON object is an error."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise fail(
                        f"{path}: line {number}",
                        f"not valid JSON ({err.msg} at column {err.colno})",
                        "fix the line or remove it (one JSON object per line)",
                    ) from None
                if not isinstance(record, dict):
                    raise fail(
                        f"{path}: line {number}",
                        f"a JSON {type(record).__name__}, not an object",
                        'write one object per line, e.g. {"text": "...", "labels": {...}}',
                    )
                yield number, record
    except UnicodeDecodeError:
        raise utf8_error(path) from None


def read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise fail(
            path,
            f"cannot read Parquet ({str(err).splitlines()[0]})",
            "point dataset.path at a valid .parquet file",
        ) from None
