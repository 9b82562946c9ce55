"""Kaggle Jigsaw Toxic Comment Classification Challenge (2018), read as it comes from Kaggle.

`path` is the unzipped competition folder (or its train.csv):

    train.csv         id, comment_text, toxic, severe_toxic, obscene, threat, insult, identity_hate (0/1)
    test.csv          id, comment_text                                   (optional)
    test_labels.csv   id + the six labels; -1 marks rows left unscored   (optional)

When both test files are there they are joined on id and become the test split; rows whose selected labels
are all -1 are dropped (Kaggle never scored them), a lone -1 stays as an unknown (masked) label.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from modlab.data import sources
from modlab.data.sources import Rows, fail
from modlab.data.table import LabeledTable

log = logging.getLogger(__name__)

LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
EXPECTS = "the Kaggle Jigsaw folder holding train.csv (and optionally test.csv + test_labels.csv)"


def _labelled_part(path: Path, columns: list[str], labels: list[str], fix: str, allow_unknown: bool = False):
    frame = sources.read_csv(path, [*columns, *labels], fix)
    ids = frame["id"].astype(str).str.strip().tolist()
    rows = Rows(path, ids, csv_file=True)
    y = np.stack(
        [
            sources.check_binary(
                sources.to_float(frame[c], c, rows, "fix the value (labels are 0/1)"), c, rows, allow_unknown
            )
            for c in labels
        ],
        axis=1,
    )
    return frame, ids, rows, y


def read(
    path, labels: list[str] | None = None, use_test: bool = True, empty_text: str = "drop"
) -> LabeledTable:
    root = sources.require_path(path, "jigsaw", EXPECTS)
    labels = sources.select_labels(labels, LABELS, "jigsaw")
    train_file = sources.require_file(root / "train.csv" if root.is_dir() else root, "jigsaw", EXPECTS)
    fix = "this reader expects Kaggle's header: id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate"

    frame, ids, rows, y = _labelled_part(train_file, ["id", "comment_text"], labels, fix)
    texts = frame["comment_text"].tolist()
    sources.check_unique_ids(ids, rows)
    keep = sources.clean_texts(texts, rows, "comment_text", empty_text, train_file)
    parts = [(np.asarray(ids, dtype=object)[keep], np.asarray(texts, dtype=object)[keep], y[keep], "train")]

    test_file, labels_file = train_file.parent / "test.csv", train_file.parent / "test_labels.csv"
    if use_test and test_file.is_file() and labels_file.is_file():
        parts.append(_test_part(test_file, labels_file, labels, empty_text, set(ids)))
    elif use_test and test_file.is_file():
        log.info(
            "%s has no test_labels.csv beside it; test.csv is not used (a test split is carved from train)",
            train_file.parent,
        )

    all_ids = np.concatenate([p[0] for p in parts]).tolist()
    sources.ensure_rows(len(all_ids), train_file, " after dropping empty texts")
    split = np.concatenate([np.full(len(p[0]), p[3], dtype=object) for p in parts]).astype(str)
    return LabeledTable(
        ids=all_ids,
        texts=np.concatenate([p[1] for p in parts]).tolist(),
        labels=np.concatenate([p[2] for p in parts]),
        label_names=labels,
        split=split if len(parts) > 1 else None,
        source=f"jigsaw:{train_file.parent}",
    )


def _test_part(test_file: Path, labels_file: Path, labels: list[str], empty_text: str, train_ids: set[str]):
    test = sources.read_csv(
        test_file, ["id", "comment_text"], "Kaggle's test.csv has the header id,comment_text"
    )
    test_ids = test["id"].astype(str).str.strip().tolist()
    test_rows = Rows(test_file, test_ids, csv_file=True)
    sources.check_unique_ids(test_ids, test_rows)
    fix = "Kaggle's test_labels.csv has the header id,toxic,severe_toxic,obscene,threat,insult,identity_hate"
    _, label_ids, label_rows, y = _labelled_part(labels_file, ["id"], labels, fix, allow_unknown=True)
    sources.check_unique_ids(label_ids, label_rows)

    position = {key: i for i, key in enumerate(label_ids)}
    missing = [i for i, key in enumerate(test_ids) if key not in position]
    if missing:
        raise fail(
            test_rows(missing[0], exact=False),
            f"id has no row in {labels_file.name} ({len(missing)} ids like it)",
            "use the test.csv and test_labels.csv of the same Kaggle download",
        )
    clash = [i for i, key in enumerate(test_ids) if key in train_ids]
    if clash:
        raise fail(
            test_rows(clash[0], exact=False),
            "id also appears in train.csv",
            "train and test ids must be distinct; remove the duplicate",
        )
    y = y[[position[key] for key in test_ids]]
    scored = ~(y == -1).all(axis=1)
    texts = test["comment_text"].tolist()
    keep = scored & sources.clean_texts(texts, test_rows, "comment_text", empty_text, test_file)
    log.info(
        "%s: %d of %d test rows are scored (rows labelled -1 dropped)", labels_file, int(scored.sum()), len(y)
    )
    return np.asarray(test_ids, dtype=object)[keep], np.asarray(texts, dtype=object)[keep], y[keep], "test"
