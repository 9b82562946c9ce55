"""Every kind of bad input fails (or warns) with one line naming the file, the row or column, and the fix."""

import json
import logging
from functools import partial

import numpy as np
import pandas as pd
import pytest

from modlab.data import civil_comments, jigsaw, jsonl, synthetic
from modlab.data.datamodule import ModerationDataModule
from modlab.data.table import LabeledTable
from modlab.errors import ModlabError
from modlab.models.losses import WeightedBCELoss

HEADER = "id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate\n"
GOOD = ['a1,"hello\nthere",0,0,0,0,0,0\n', "a2,you idiot,1,0,0,0,1,0\n"]


def jigsaw_dir(tmp_path, rows, header=HEADER, raw: bytes | None = None):
    path = tmp_path / "train.csv"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(header + "".join(rows), encoding="utf-8")
    return tmp_path


def fails(call, *parts: str) -> str:
    """call() raises a one-line ModlabError containing every part."""
    with pytest.raises(ModlabError) as err:
        call()
    return one_line(err, *parts)


def one_line(excinfo, *parts: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


def jsonl_file(tmp_path, lines: list[str]):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- missing files and columns -----------------------------------------------------------------------------


def test_missing_path_directory_and_file(tmp_path):
    fails(
        lambda: jigsaw.read(tmp_path / "nope"),
        "dataset.path=", "nope", "does not exist", "point dataset.path at",
    )
    fails(lambda: jigsaw.read(tmp_path), "train.csv", "does not exist", "Kaggle Jigsaw folder")
    fails(lambda: jigsaw.read(None), "dataset=jigsaw needs dataset.path", "dataset.path=<")
    fails(lambda: jsonl.read(tmp_path), str(tmp_path), "no .jsonl files", "point dataset.path")
    fails(lambda: civil_comments.read(tmp_path / "missing.parquet"), "missing.parquet", "does not exist")


def test_missing_text_or_label_column(tmp_path):
    root = jigsaw_dir(tmp_path, ["a1,hi,0,0,0,0,0\n"], header=HEADER.replace(",threat", ""))
    fails(
        lambda: jigsaw.read(root),
        "train.csv", "column 'threat' is missing", "the header has: id, comment_text", "expects Kaggle's header",
    )
    root = jigsaw_dir(tmp_path, ["a1,hi,0,0,0,0,0,0\n"], header=HEADER.replace("comment_text", "text"))
    fails(lambda: jigsaw.read(root), "train.csv", "column 'comment_text' is missing")
    pd.DataFrame({"body": ["x"], "toxicity": [0.1]}).to_parquet(tmp_path / "cc.parquet")
    fails(
        lambda: civil_comments.read(tmp_path / "cc.parquet"),
        "cc.parquet", "no text column", "comment_text or text",
    )
    pd.DataFrame({"text": ["x"], "toxicity": [0.1]}).to_parquet(tmp_path / "cc.parquet")
    fails(
        lambda: civil_comments.read(tmp_path / "cc.parquet"),
        "cc.parquet", "label column 'severe_toxicity' is missing", "dataset.reader.labels",
    )
    assert civil_comments.read(tmp_path / "cc.parquet", labels=["toxicity"]).labels.tolist() == [[0]]


def test_label_not_binary_or_not_a_fraction(tmp_path):
    root = jigsaw_dir(tmp_path, [*GOOD, 'a3,"multi\nline\ntext",0,0,0,2,0,0\n'])
    fails(
        lambda: jigsaw.read(root),
        "train.csv: row 3 (line 5, id 'a3')", "'threat' is 2, not 0 or 1", "fix the value",
    )
    root = jigsaw_dir(tmp_path, [*GOOD, "a3,text,0,0,yes,0,0,0\n"])
    fails(lambda: jigsaw.read(root), "row 3", "'obscene' is 'yes', not a number")
    root = jigsaw_dir(tmp_path, [*GOOD, "a3,text,0,0,,0,0,0\n"])
    fails(lambda: jigsaw.read(root), "row 3", "'obscene' is empty")
    civil = tmp_path / "civil.csv"
    civil.write_text(
        "id,target,comment_text,severe_toxicity,obscene,identity_attack,insult,threat,sexual_explicit\n"
        "1,0.2,fine,0,0,0,0,0,0\n2,1.5,bad,0,0,0,0,0,0\n",
        encoding="utf-8",
    )
    fails(
        lambda: civil_comments.read(civil),
        "civil.csv: row 2 (id '2')", "'target' is 1.5, outside [0, 1]", "fix the value",
    )
    path = jsonl_file(
        tmp_path, ['{"text": "a", "labels": {"spam": 1}}', '{"text": "b", "labels": {"spam": 2}}']
    )
    fails(lambda: jsonl.read(path), "data.jsonl: line 2", "label 'spam' is 2, not 0 or 1", "0, 1, or null")


def test_empty_or_nan_text_dropped_with_counted_warning_or_error(tmp_path, caplog):
    root = jigsaw_dir(tmp_path, [*GOOD, 'a3,"",1,0,0,0,0,0\n', "a4,   ,0,0,0,0,0,0\n"])
    with caplog.at_level(logging.WARNING):
        table = jigsaw.read(root)
    assert table.ids == ["a1", "a2"]
    warnings = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1 and "dropped 2 of 4 rows with empty or NaN comment_text" in warnings[0]
    assert "row 3 (id 'a3')" in warnings[0] and "empty_text=error" in warnings[0]
    fails(
        lambda: jigsaw.read(root, empty_text="error"),
        "train.csv: row 3 (line 5, id 'a3')", "comment_text is empty or NaN (2 such rows)", "empty_text=drop",
    )
    pd.DataFrame({"text": ["ok", None, float("nan")], "toxicity": [0.0, 0.1, 0.2]}).to_parquet(
        tmp_path / "c.parquet"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert len(civil_comments.read(tmp_path / "c.parquet", labels=["toxicity"])) == 1
    assert any("dropped 2 of 3 rows" in r.getMessage() for r in caplog.records)
    path = jsonl_file(tmp_path, ['{"text": "a", "labels": ["x"]}', '{"text": null, "labels": ["x"]}'])
    fails(lambda: jsonl.read(path, empty_text="error"), "data.jsonl: line 2", "text is empty or NaN")
    fails(lambda: jsonl.read(path, empty_text="maybe"), "empty_text='maybe'", "drop, error")


def test_duplicate_ids(tmp_path):
    root = jigsaw_dir(tmp_path, [*GOOD, "a1,again,0,0,0,0,0,0\n"])
    fails(
        lambda: jigsaw.read(root),
        "train.csv: row 3", "id 'a1' already appears at row 1", "make ids unique",
    )
    path = jsonl_file(
        tmp_path, ['{"id": 7, "text": "a", "labels": ["x"]}', '{"id": "7", "text": "b", "labels": []}']
    )
    fails(lambda: jsonl.read(path), "data.jsonl: line 2 (id '7')", "already appears")


def test_bytes_that_are_not_utf8(tmp_path):
    raw = (HEADER + "a1,fine,0,0,0,0,0,0\na2,caf").encode() + b"\xe9 au lait,0,0,0,0,0,0\n"
    fails(
        lambda: jigsaw.read(jigsaw_dir(tmp_path, [], raw=raw)),
        "train.csv: line 3, byte 7", "e9", "not valid UTF-8", "re-save the file as UTF-8",
    )
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "ok", "labels": ["a"]}\n{"text": "\xff\xfe", "labels": ["a"]}\n')
    fails(lambda: jsonl.read(path), "bad.jsonl: line 2", "ff fe", "UTF-8")


def test_malformed_csv_quoting(tmp_path):
    root = jigsaw_dir(tmp_path, [*GOOD, 'a3,"never closed,0,0,0,0,0,0\n', "a4,x,0,0,0,0,0,0\n"])
    fails(
        lambda: jigsaw.read(root),
        "train.csv: line 5", "malformed CSV quoting", 'quotes inside a field as ""',
    )
    root = jigsaw_dir(tmp_path, [*GOOD, "a3,hello, world,0,0,0,0,0,0\n"])
    fails(
        lambda: jigsaw.read(root),
        "train.csv: line 5", "has 9 fields but the header has 8", "quote fields that contain commas",
    )
    root = jigsaw_dir(tmp_path, [*GOOD, "a3,x,0,0,0\n"])  # too few fields: not padded with empty cells
    fails(lambda: jigsaw.read(root), "train.csv: line 5", "has 5 fields but the header has 8")
    root = jigsaw_dir(tmp_path, [*GOOD, 'a3,"quoted"then more,0,0,0,0,0,0\n'])  # Arrow alone would read it
    fails(lambda: jigsaw.read(root), "train.csv: line 5", "malformed CSV quoting")
    root = jigsaw_dir(tmp_path, ["a1,hi,0,0,0,0,0,0,0\n"], header=HEADER.replace("\n", ",toxic\n"))
    fails(lambda: jigsaw.read(root), "train.csv", "column 'toxic' appears twice in the header", "rename")


def test_jsonl_line_not_json_or_without_text(tmp_path):
    path = jsonl_file(tmp_path, ['{"text": "a", "labels": ["x"]}', '{"text": "b", "labels": ["x"]'])
    fails(lambda: jsonl.read(path), "data.jsonl: line 2", "not valid JSON", "fix the line or remove it")
    path = jsonl_file(tmp_path, ['["a", "b"]'])
    fails(lambda: jsonl.read(path), "data.jsonl: line 1", "not an object")
    path = jsonl_file(tmp_path, ['{"text": "a", "labels": ["x"]}', '{"body": "b", "labels": ["x"]}'])
    fails(
        lambda: jsonl.read(path),
        "data.jsonl: line 2", "no 'text' field (keys: body, labels)", "dataset.reader.text_field",
    )
    assert jsonl.read(jsonl_file(tmp_path, ['{"body": "b", "labels": ["x"]}']), text_field="body").texts == [
        "b"
    ]


def test_label_name_not_in_taxonomy(tmp_path):
    path = jsonl_file(
        tmp_path,
        [
            '{"text": "a", "labels": {"spam": 1, "threats": 0}}',
            '{"text": "b", "labels": {"spma": 1, "threats": 0}}',
        ],
    )
    fails(
        lambda: jsonl.read(path, labels=["spam", "threats"]),
        "data.jsonl: line 2", "label 'spma' is not in the taxonomy (spam, threats)", "add it to dataset.reader.labels",
    )
    path = jsonl_file(tmp_path, ['{"text": "a", "labels": {"moderation": ["insult", "safe"]}}'])
    fails(lambda: jsonl.read(path), "line 1", "'safe' is listed together with 'insult'")
    path = jsonl_file(tmp_path, ['{"text": "a", "labels": {"moderation": ["insult"], "topic": ["x"]}}'])
    fails(lambda: jsonl.read(path), "line 1", "several targets", "dataset.reader.target=moderation")
    fails(
        lambda: jigsaw.read(tmp_path, labels=["toxic", "spam"]),
        "dataset.reader.labels", "spam is not a jigsaw label", "toxic, severe_toxic",
    )
    fails(lambda: synthetic.generate(10, taxonomy="reddit"), "taxonomy='reddit'", "jigsaw, trust_safety")


def test_dataset_empty_after_filtering(tmp_path):
    root = jigsaw_dir(tmp_path, ['a1,"",0,0,0,0,0,0\n', "a2, ,1,0,0,0,0,0\n"])
    fails(lambda: jigsaw.read(root), "train.csv", "no rows left after dropping empty texts", "non-empty rows")
    fails(
        lambda: jsonl.read(jsonl_file(tmp_path, ['{"text": "", "labels": ["x"]}'])),
        "data.jsonl", "no rows left after dropping empty texts",
    )
    fails(lambda: jigsaw.read(jigsaw_dir(tmp_path, [])), "train.csv", "no rows left")


@pytest.fixture(scope="module")
def tokenizer():
    from modlab.models import backbones

    return backbones.load_tokenizer(str(backbones.build_tiny("bert")))


def test_label_with_zero_positives_in_training_warns_and_pos_weight_stays_finite(tokenizer, tmp_path, caplog):
    base = synthetic.generate(size=120, seed=1)
    labels = base.labels.copy()
    labels[:, base.label_names.index("threat")] = 0
    table = LabeledTable(base.ids, base.texts, labels, base.label_names, source="no-threat")
    dm = ModerationDataModule(lambda: table, tokenizer, max_length=32, cache_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING):
        dm.setup()
    lines = [r.getMessage() for r in caplog.records if "no positives in the training split" in r.getMessage()]
    assert len(lines) == 1 and "'threat'" in lines[0] and "\n" not in lines[0]
    loss = WeightedBCELoss(num_labels=len(table.label_names)).fit(dm.train_labels, dm.label_names)
    assert np.isfinite(loss.pos_weight.numpy()).all()


def test_bad_reader_output_fails_in_setup_not_in_a_worker(tokenizer, tmp_path):
    base = synthetic.generate(size=40, seed=2)
    labels = base.labels.copy()
    labels[5, 1] = np.nan
    table = LabeledTable(base.ids, base.texts, labels, base.label_names, source="custom")
    dm = ModerationDataModule(lambda: table, tokenizer, max_length=32, num_workers=2, cache_dir=str(tmp_path))
    fails(
        lambda: dm.setup(),
        "custom: row 6 (id 'syn-2-5')", "'severe_toxic' = nan", "labels must be in [0, 1] or -1",
    )
    dm = ModerationDataModule(lambda: {"text": "x"}, tokenizer, cache_dir=str(tmp_path))
    fails(lambda: dm.setup(), "returned a dict, not a LabeledTable")
    dm = ModerationDataModule(partial(synthetic.generate, size=30), tokenizer, val_size=0.6, test_size=0.5)
    fails(lambda: dm.setup(), "val_size + data.test_size = 1.1", "less than 1")


def test_splits_file_that_does_not_match_the_dataset(tokenizer, tmp_path):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"train": ["syn-0-1", "nope"], "val": [], "test": []}), encoding="utf-8")
    dm = ModerationDataModule(partial(synthetic.generate, size=30), tokenizer, splits_file=str(path))
    fails(
        lambda: dm.setup(),
        "splits.json", "train id 'nope' (1 ids in all) is not in the dataset", "same dataset",
    )
