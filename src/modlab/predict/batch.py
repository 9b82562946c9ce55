"""`modlab predict <bundle | run dir | .ckpt> --input FILE --output FILE`: score a file, stream to a file.

Rows go through in chunks (modlab.predict.inputs), so a file of millions of lines takes constant memory.
The output (.csv or .jsonl, by its extension) has `id`, `prob_<label>` and `flag_<label>` (1 when p >= the
label's threshold) per row, in input order; it is written to a temporary file beside the target and renamed
at the end, so an interrupted or failed run leaves no half-written output. A rich progress bar shows rows/s;
the last line counts the rows, the texts truncated at max_length and the empty texts (scored all the same).
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modlab.errors import ModlabError
from modlab.predict import inputs

OUTPUT_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def output_format(path: Path) -> str:
    found = OUTPUT_SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise ModlabError(f"--output {path}: name a .csv or .jsonl file (the extension picks the format)")
    return found


class AtomicOutput:
    """Rows appended to a temporary file beside `path`; `commit()` renames it into place, `discard()` removes it."""

    def __init__(self, path: Path, labels: list[str]) -> None:
        self.path, self.labels, self.format = path, labels, output_format(path)
        if path.is_dir():
            raise ModlabError(f"--output {path} is a directory; name a .csv or .jsonl file")
        # A new name beside the target (same file system, so the rename is atomic), created with the umask's
        # permissions like any output.
        self.tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.tmp, "x", encoding="utf-8", newline="")  # noqa: SIM115 - closed in commit/discard
        except OSError as err:
            raise ModlabError(f"cannot write --output {path} ({err.strerror or err}); choose a writable path") from None
        self.columns = ["id", *(f"prob_{n}" for n in labels), *(f"flag_{n}" for n in labels)]
        if self.format == "csv":
            self.csv = csv.writer(self.file)
            self.csv.writerow(self.columns)

    def write(self, ids: list[str], probs: np.ndarray, flags: np.ndarray) -> None:
        rounded = np.round(probs.astype(np.float64), 6).tolist()  # as eval's predictions.csv
        marks = flags.astype(int).tolist()
        if self.format == "csv":
            self.csv.writerows([key, *p, *f] for key, p, f in zip(ids, rounded, marks, strict=True))
            return
        for key, p, f in zip(ids, rounded, marks, strict=True):
            self.file.write(json.dumps(dict(zip(self.columns, [key, *p, *f], strict=True)), ensure_ascii=False) + "\n")

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.path)
        except OSError as err:
            self.discard()
            raise ModlabError(f"cannot write --output {self.path} ({err.strerror or err}); check the disk and "
                              f"choose a writable path") from None

    def discard(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.tmp.unlink(missing_ok=True)


@dataclass
class Counts:
    rows: int = 0
    truncated: int = 0
    empty: int = 0


def _progress(total: int | None):
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("scoring"), BarColumn() if total else TextColumn(""),
               TextColumn("{task.fields[rows]:,} rows, {task.fields[rate]:,.0f} rows/s"), TimeElapsedColumn()]
    return Progress(*columns, console=Console(stderr=True), transient=True)


def run(path: str, input_path: str, output_path: str, text_column: str | None = None,
        id_column: str = inputs.ID_COLUMN, batch_size: int = 32, input_format: str | None = None,
        precision: str | None = None, threads: int | None = None, chunk_rows: int = 2048) -> Counts:
    """Score `input_path` into `output_path`; prints the closing line (and a warning for empty texts)."""
    from modlab.predict.classifier import load

    if int(batch_size) < 1:
        raise ModlabError(f"--batch-size {batch_size} must be at least 1")
    fmt = inputs.input_format(input_path, input_format)
    out = Path(output_path).expanduser()
    output_format(out)  # before the model loads: a wrong name costs nothing
    clf = load(path, precision=precision, threads=threads, batch_size=batch_size)
    writer = AtomicOutput(out, clf.labels)
    counts, started = Counts(), time.perf_counter()
    source = Path(input_path).expanduser()
    total = source.stat().st_size if input_path != inputs.STDIN and source.is_file() else None
    try:
        with _progress(total) as bar:
            task = bar.add_task("scoring", total=total, rows=0, rate=0.0)
            for chunk in inputs.read_chunks(input_path, fmt, text_column, id_column, chunk_rows):
                scores = clf.score(chunk.texts)
                writer.write(chunk.ids, scores.probs, clf.flags(scores.probs))
                counts.rows += len(chunk.ids)
                counts.truncated += int(scores.truncated.sum())
                counts.empty += int(scores.empty.sum())
                elapsed = max(time.perf_counter() - started, 1e-9)
                bar.update(task, completed=chunk.position or None, rows=counts.rows, rate=counts.rows / elapsed)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    elapsed = time.perf_counter() - started
    if counts.empty:
        print(f"warning: {counts.empty:,} empty texts were scored (as the model scores an empty text)",
              file=sys.stderr)
    print(f"wrote {counts.rows:,} rows to {out} in {elapsed:.1f}s ({counts.rows / max(elapsed, 1e-9):,.0f} rows/s, "
          f"{clf.describe()}); {counts.truncated:,} texts truncated at max_length={clf.max_length}, "
          f"{counts.empty:,} empty")
    return counts
