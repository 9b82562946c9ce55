"""Readers on the real samples and on small files in each layout users bring."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
from conftest import CIVIL_SAMPLE, JIGSAW_SAMPLE

from modlab.data import civil_comments, jigsaw, jsonl
from modlab.data.table import validate_table

JIGSAW_HEADER = "id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate\n"


@pytest.fixture(scope="module")
def jigsaw_sample():
    return jigsaw.read(JIGSAW_SAMPLE)


def test_jigsaw_sample_parses_exactly(jigsaw_sample):
    table = jigsaw_sample
    assert len(table) == 2886 and table.label_names == jigsaw.LABELS and table.split is None
    # Prevalence as the data README states it (toxic 10.2%, ..., threat 0.42%, identity_hate 1.1%).
    prevalence = dict(zip(table.label_names, np.round(table.labels.mean(axis=0) * 100, 2), strict=True))
    assert prevalence == {
        "toxic": 10.19,
        "severe_toxic": 1.21,
        "obscene": 5.51,
        "threat": 0.42,
        "insult": 5.47,
        "identity_hate": 1.07,
    }
    assert table.labels.sum(axis=0).tolist() == [294, 35, 159, 12, 158, 31]
    # Byte-exact against a strict RFC 4180 parse: multi-line quoted comments and "" escapes included.
    with open(JIGSAW_SAMPLE / "train.csv", encoding="utf-8", newline="") as f:
        records = list(csv.reader(f, strict=True))[1:]
    assert table.ids == [r[0] for r in records] and table.texts == [r[1] for r in records]
    assert sum("\n" in t for t in table.texts) > 500 and any('""' not in t and '"' in t for t in table.texts)
    validate_table(table)


def test_jigsaw_label_subset_and_file_path():
    table = jigsaw.read(JIGSAW_SAMPLE / "train.csv", labels=["threat", "toxic"])
    assert table.label_names == ["threat", "toxic"] and table.labels.sum(axis=0).tolist() == [12, 294]


def write_jigsaw(tmp_path, train_rows, test_rows=None, test_labels=None):
    (tmp_path / "train.csv").write_text(JIGSAW_HEADER + "".join(train_rows), encoding="utf-8")
    if test_rows is not None:
        (tmp_path / "test.csv").write_text("id,comment_text\n" + "".join(test_rows), encoding="utf-8")
    if test_labels is not None:
        (tmp_path / "test_labels.csv").write_text(
            JIGSAW_HEADER.replace("comment_text,", "") + "".join(test_labels), encoding="utf-8"
        )
    return tmp_path


def test_jigsaw_test_files_join_on_id_and_drop_unscored(tmp_path):
    root = write_jigsaw(
        tmp_path,
        ['a1,"hello\nthere",0,0,0,0,0,0\n', 'a2,"you ""idiot""",1,0,0,0,1,0\n'],
        ['t1,"fine text"\n', "t2,unscored text\n", 't3,"partly, scored"\n'],
        ["t3,1,-1,0,0,1,0\n", "t2,-1,-1,-1,-1,-1,-1\n", "t1,0,0,0,0,0,0\n"],  # any order: joined on id
    )
    table = jigsaw.read(root)
    assert table.ids == ["a1", "a2", "t1", "t3"] and table.split.tolist() == [
        "train",
        "train",
        "test",
        "test",
    ]
    assert table.texts[:2] == ["hello\nthere", 'you "idiot"'] and table.texts[3] == "partly, scored"
    assert table.labels[3].tolist() == [1, -1, 0, 0, 1, 0]  # a lone -1 stays as an unknown label
    assert jigsaw.read(root, use_test=False).split is None


def test_civil_comments_sample_binarized_soft_and_identity_meta():
    hard = civil_comments.read(CIVIL_SAMPLE)
    assert len(hard) == 99 and hard.label_names == civil_comments.LABELS
    assert hard.labels.sum(axis=0).tolist() == [8, 0, 2, 1, 6, 0, 0] and set(np.unique(hard.labels)) <= {0, 1}
    assert "\r" not in "".join(hard.texts) and hard.texts[4] == "haha you guys are a bunch of losers."
    soft = civil_comments.read(CIVIL_SAMPLE, soft=True)
    assert soft.labels[4, 0] == pytest.approx(0.893617021) and soft.labels[4, 4] == pytest.approx(0.872340426)
    assert np.array_equal(soft.labels >= 0.5, hard.labels == 1)
    assert (
        civil_comments.read(CIVIL_SAMPLE, threshold=0.3).labels.sum(axis=0) >= hard.labels.sum(axis=0)
    ).all()
    meta = hard.meta
    assert set(civil_comments.IDENTITY_COLUMNS) <= set(meta.columns) and len(meta) == 99
    column = "intellectual_or_learning_disability"
    assert meta[column].notna().sum() == 12 and meta.loc[4, column] == 0.25 and np.isnan(meta.loc[0, column])
    assert hard.take(np.array([4, 0])).meta.loc[0, column] == 0.25


def test_civil_comments_parquet_and_jsonl_export(tmp_path):
    frame = pd.DataFrame(
        {
            "text": ["you are a moron", "nice idea", "  ", "go away"],
            "toxicity": [0.9, 0.0, 0.1, 0.5],
            "severe_toxicity": [0.1, 0, 0, 0],
            "obscene": [0.0, 0, 0, 0.2],
            "threat": [0.0, 0, 0, 0],
            "insult": [0.8, 0, 0, 0.4],
            "identity_attack": [0.0, 0, 0, 0],
            "sexual_explicit": [0.0, 0, 0, 0],
            "female": [0.5, None, None, 0.0],
        }
    )
    folder = tmp_path / "export"
    folder.mkdir()
    frame.iloc[:3].to_parquet(folder / "train-00000-of-00001.parquet")
    frame.iloc[3:].to_parquet(folder / "test-00000-of-00001.parquet")
    table = civil_comments.read(folder)
    assert table.ids == [
        "train-00000-of-00001.parquet:1",
        "train-00000-of-00001.parquet:2",
        "test-00000-of-00001.parquet:1",
    ]  # the blank text is dropped
    assert table.split.tolist() == ["train", "train", "test"] and table.labels[:, 0].tolist() == [1, 0, 1]
    assert table.meta["female"].tolist()[:1] == [0.5]
    lines = frame.iloc[:2].to_dict("records")
    (tmp_path / "cc.jsonl").write_text("\n".join(json.dumps(r) for r in lines), encoding="utf-8")
    table = civil_comments.read(tmp_path / "cc.jsonl", labels=["toxicity", "insult"], soft=True)
    assert table.labels.tolist() == [[pytest.approx(0.9), pytest.approx(0.8)], [0, 0]]


def test_jsonl_dict_shape_keeps_prefixes_and_infers_taxonomy(tmp_path):
    path = tmp_path / "mod.jsonl"
    rows = [
        {
            "id": "m1",
            "text": "[ADULT][MESSAGE] buy followers at spam.example",
            "labels": {"threats": 0, "spam": 1},
            "lang": "en",
        },
        {"id": "m2", "text": "[MINOR][COMMENT] see you at practice", "labels": {"threats": 0, "spam": 0}},
        {"id": "m3", "text": "maybe", "labels": {"threats": None, "spam": 0}},
        {"id": "m4", "text": "partial", "labels": {"spam": 1}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    table = jsonl.read(path)
    assert table.label_names == ["spam", "threats"]
    assert table.texts[0].startswith("[ADULT][MESSAGE] ") and table.texts[1].startswith("[MINOR][COMMENT]")
    assert table.labels.tolist() == [[1, 0], [0, 0], [0, -1], [1, -1]]  # null / absent: unknown
    assert jsonl.read(path, missing_labels="negative").labels[3].tolist() == [1, 0]
    assert table.meta["lang"].tolist()[0] == "en"
    assert jsonl.read(path, labels=["threats", "spam", "scam"]).labels[0].tolist() == [0, 1, -1]


def test_jsonl_names_shape_with_target_and_safe(tmp_path):
    path = tmp_path / "mod.jsonl"
    rows = [
        {"text": "you idiot", "labels": {"moderation": ["toxicity", "insult"], "sentiment": ["negative"]}},
        {"text": "hello", "labels": {"moderation": ["safe"], "sentiment": ["positive"]}},
        {"text": "shut up", "labels": {"moderation": ["toxicity"], "sentiment": []}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    table = jsonl.read(path, target="moderation")
    assert table.label_names == ["insult", "toxicity"] and table.labels.tolist() == [[1, 1], [0, 0], [0, 1]]
    assert table.ids == ["mod.jsonl:1", "mod.jsonl:2", "mod.jsonl:3"]
    single = tmp_path / "single.jsonl"
    single.write_text(
        json.dumps({"text": "x", "labels": {"moderation": ["safe"]}})
        + "\n"
        + json.dumps({"text": "y", "labels": ["spam"]})
        + "\n",
        encoding="utf-8",
    )
    assert jsonl.read(single, labels=["spam", "scam"]).labels.tolist() == [[0, 0], [1, 0]]


def test_jsonl_folder_splits_by_file_name_and_field(tmp_path):
    for name, split_field in (("train.jsonl", None), ("validation.jsonl", None), ("extra.jsonl", "test")):
        record = {"id": name, "text": "t", "labels": {"a": 1}}
        if split_field:
            record["split"] = split_field
        (tmp_path / name).write_text(json.dumps(record) + "\n", encoding="utf-8")
    table = jsonl.read(tmp_path)
    assert dict(zip(table.ids, table.split, strict=True)) == {
        "extra.jsonl": "test",
        "train.jsonl": "train",
        "validation.jsonl": "val",
    }


def test_jsonl_write_read_round_trip_both_shapes(tmp_path):
    table = jigsaw.read(JIGSAW_SAMPLE).take(np.arange(200))
    for shape in ("dict", "list"):
        path = jsonl.write(table, tmp_path / f"{shape}.jsonl", shape=shape)
        back = jsonl.read(path, labels=table.label_names)
        assert (
            back.ids == table.ids and back.texts == table.texts and np.array_equal(back.labels, table.labels)
        )


def test_jsonl_write_keeps_meta_as_valid_json(tmp_path):
    table = civil_comments.read(CIVIL_SAMPLE)
    path = jsonl.write(table, tmp_path / "civil.jsonl")
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert "NaN" not in first and json.loads(first)["male"] is None
    back = jsonl.read(path, labels=table.label_names)
    assert np.array_equal(back.labels, table.labels) and back.meta["male"].notna().sum() == 12
