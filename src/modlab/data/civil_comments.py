"""civil_comments: the Kaggle 2019 *Unintended Bias* CSVs, or a Parquet/JSONL export of the corpus.

`path` is one file or a folder:

- Kaggle 2019: `train.csv` (`id, target, comment_text, severe_toxicity, obscene, identity_attack, insult, threat,
  <24 identity columns>, ..., sexual_explicit, ...`); with `use_test`, the labelled `test_public_expanded.csv`
  and `test_private_expanded.csv` beside it become the test split.
- Export (e.g. Hugging Face / TFDS civil_comments): `.parquet` or `.jsonl` files with `text, toxicity,
  severe_toxicity, obscene, threat, insult, identity_attack, sexual_explicit` (+ optional `id` and identity
  columns); in a folder, a file whose name says train/validation/test gives that split.

Labels are fractions of raters. They are binarized (`>= threshold`) or, with `soft=true`, kept as soft targets.
The Kaggle `target` column is the label `toxicity`. Identity columns (fractions, NaN where not annotated) are
kept in `table.meta` for subgroup metrics.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modlab.data import sources
from modlab.data.sources import Rows, fail
from modlab.data.table import LabeledTable
from modlab.errors import ModlabError

log = logging.getLogger(__name__)

LABELS = ["toxicity", "severe_toxicity", "obscene", "identity_attack", "insult", "threat", "sexual_explicit"]
IDENTITY_COLUMNS = [
    "asian",
    "atheist",
    "bisexual",
    "black",
    "buddhist",
    "christian",
    "female",
    "heterosexual",
    "hindu",
    "homosexual_gay_or_lesbian",
    "intellectual_or_learning_disability",
    "jewish",
    "latino",
    "male",
    "muslim",
    "other_disability",
    "other_gender",
    "other_race_or_ethnicity",
    "other_religion",
    "other_sexual_orientation",
    "physical_disability",
    "psychiatric_or_mental_illness",
    "transgender",
    "white",
]
EXTRA_META = ["identity_annotator_count", "toxicity_annotator_count"]
TEXT_COLUMNS = ("comment_text", "text", "comment")  # "comment": derived samples such as the identities subset
ALIASES = {"toxicity": ("target", "toxicity")}  # label -> accepted column names, first found wins
KAGGLE_TEST_FILES = ("test_public_expanded.csv", "test_private_expanded.csv")
DATA_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json")
EXPECTS = "the Kaggle 2019 folder with train.csv, or a civil_comments .parquet/.jsonl file or folder"


def _files(root: Path, use_test: bool) -> list[tuple[Path, str]]:
    """(file, split) pairs to read."""
    if root.is_file():
        if root.suffix.lower() not in DATA_SUFFIXES:
            raise fail(
                root, f"unsupported file type {root.suffix!r}", f"use one of {', '.join(DATA_SUFFIXES)}"
            )
        return [(root, "train")]
    if (root / "train.csv").is_file():
        files = [(root / "train.csv", "train")]
        if use_test:
            files += [(root / name, "test") for name in KAGGLE_TEST_FILES if (root / name).is_file()]
        return files
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".parquet", ".jsonl"))
    if not found:
        raise fail(root, "no train.csv, .parquet or .jsonl files here", f"point dataset.path at {EXPECTS}")
    files = sources.by_split(found)
    if not use_test:
        files = [(p, s) for p, s in files if s == "train"]
    return files


def _frame(path: Path, labels: list[str]) -> tuple[pd.DataFrame, Rows | None]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        header = sources.csv_header(path)
        text = next((c for c in TEXT_COLUMNS if c in header), "comment_text")
        required = [text] + [_label_column(lab, header) for lab in labels]
        fix = "civil_comments files have comment_text (or text, comment) and the label columns " + ", ".join(LABELS)
        return sources.read_csv(path, required, fix), None
    if suffix == ".parquet":
        return sources.read_parquet(path), None
    numbered = list(sources.read_jsonl(path))
    frame = pd.DataFrame([record for _, record in numbered])
    return frame, Rows(path, lines=[n for n, _ in numbered])


def _fractions_or_nan(column: pd.Series) -> np.ndarray:
    """An identity/meta column as floats; empty (not annotated) and non-numeric cells are NaN."""
    if isinstance(column.array, pd.arrays.ArrowStringArray):  # a CSV column: blanks and the cast in Arrow, 4x faster
        values = pa.array(column)
        values = pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)
        with contextlib.suppress(pa.ArrowInvalid):  # a non-numeric cell: pandas below makes it NaN
            return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    blank = column.replace("", None)
    fast = sources.fast_float(blank)
    return fast if fast is not None else pd.to_numeric(blank, errors="coerce").astype("float64").to_numpy()


def _label_column(label: str, columns) -> str:
    names = ALIASES.get(label, (label,))
    return next((c for c in names if c in columns), names[0])


def read(
    path,
    labels: list[str] | None = None,
    threshold: float = 0.5,
    soft: bool = False,
    identity_columns: list[str] | None = None,
    use_test: bool = True,
    empty_text: str = "drop",
) -> LabeledTable:
    root = sources.require_path(path, "civil_comments", EXPECTS)
    labels = sources.select_labels(
        ["toxicity" if x == "target" else x for x in labels] if labels else None, LABELS, "civil_comments"
    )
    if not 0 < float(threshold) <= 1:
        raise ModlabError(f"dataset.reader.threshold={threshold} must be in (0, 1]; 0.5 is the usual choice")
    parts = [
        _read_part(file, split, labels, float(threshold), soft, identity_columns, empty_text)
        for file, split in _files(root, use_test)
    ]
    if len(parts) == 1:  # a million rows are not copied into one table again
        ids, texts, y, meta = parts[0]["ids"], parts[0]["texts"], parts[0]["labels"], parts[0]["meta"]
    else:
        _check_ids_across(parts)
        ids, texts = [key for p in parts for key in p["ids"]], [t for p in parts for t in p["texts"]]
        y, meta = np.concatenate([p["labels"] for p in parts]), pd.concat([p["meta"] for p in parts], ignore_index=True)
    sources.ensure_rows(len(ids), root, " after dropping empty texts")
    split = None
    if {p["split"] for p in parts} != {"train"}:
        split = np.concatenate([np.full(len(p["ids"]), p["split"]) for p in parts])
    return LabeledTable(
        ids=ids,
        texts=texts,
        labels=y,
        label_names=labels,
        split=split,
        meta=meta if len(meta.columns) else None,
        source=f"civil_comments:{root}",
    )


def _check_ids_across(parts: list[dict]) -> None:
    seen: dict[str, str] = {}
    for part in parts:
        for key in part["ids"]:
            if seen.setdefault(key, part["file"]) != part["file"]:
                raise fail(
                    part["file"],
                    f"id {sources.short(key)} also appears in {seen[key]}",
                    "ids must be unique across the train and test files",
                )


def _read_part(
    path: Path,
    split: str,
    labels: list[str],
    threshold: float,
    soft: bool,
    identity_columns: list[str] | None,
    empty_text: str,
) -> dict:
    frame, rows = _frame(path, labels)
    columns = list(frame.columns)
    text_column = next((c for c in TEXT_COLUMNS if c in columns), None)
    if text_column is None:
        raise fail(
            path,
            f"no text column (looked for {' or '.join(TEXT_COLUMNS)}; found: "
            f"{', '.join(map(str, columns[:12])) or 'nothing'})",
            "rename the text column to comment_text or text",
        )
    if "id" in columns:
        ids = [str(x).strip() for x in frame["id"].tolist()]
    else:
        ids = [f"{path.name}:{i + 1}" for i in range(len(frame))]
    rows = Rows(path, ids, lines=rows.lines if rows else None, csv_file=path.suffix.lower() == ".csv")

    y = np.empty((len(frame), len(labels)), dtype=np.float32)
    for j, label in enumerate(labels):
        column = _label_column(label, columns)
        if column not in columns:
            raise fail(
                path,
                f"label column {column!r} is missing",
                f"set dataset.reader.labels to the columns this file has (of {', '.join(LABELS)})",
            )
        values = sources.to_float(
            frame[column], column, rows, "fill the value (a fraction of raters in [0, 1])"
        )
        y[:, j] = sources.check_fraction(values, column, rows)
    if not soft:
        y = (y >= threshold).astype(np.float32)

    wanted = list(identity_columns) if identity_columns is not None else IDENTITY_COLUMNS
    if identity_columns is not None:
        absent = [c for c in wanted if c not in columns]
        if absent:
            raise fail(
                path,
                f"identity column {absent[0]!r} is missing",
                "set dataset.reader.identity_columns to columns the file has (or null for the defaults)",
            )
    meta = pd.DataFrame(
        {
            c: _fractions_or_nan(frame[c])
            for c in [*wanted, *EXTRA_META]
            if c in columns
        },
        index=range(len(frame)),
        copy=False,  # one block per column: pandas' stacking copy of them cost 1.4 s per million rows on a VM
    )

    texts = frame[text_column].tolist()
    sources.check_unique_ids(ids, rows)
    keep = sources.clean_texts(texts, rows, text_column, empty_text, path)
    if not keep.all():
        index = np.flatnonzero(keep)
        ids, texts, y = [ids[i] for i in index], [texts[i] for i in index], y[index]
        meta = meta.iloc[index].reset_index(drop=True)
    return {"file": str(path), "split": split, "ids": ids, "texts": texts, "labels": y, "meta": meta}
