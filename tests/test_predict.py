"""modlab.load and `modlab predict`: one interface over bundles, run dirs and checkpoints; streamed batch files.

The tiny run trained on the Jigsaw sample comes from test_export.trained_run (trained once per session).
"""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import JIGSAW_SAMPLE
from test_export import (
    LABELS,
    cli_fails,
    crafted_checkpoint,
    needs_sample,
    no_leftovers,
    one_line,
    trained_run,
)

import modlab
from modlab import cli
from modlab.export.pipeline import export
from modlab.predict import backends, batch
from modlab.predict.classifier import Classifier

PROBS = [f"prob_{n}" for n in LABELS]
FLAGS = [f"flag_{n}" for n in LABELS]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def bundle_dir(run, tmp_path_factory) -> Path:
    out, _ = export(run, out=tmp_path_factory.mktemp("predict") / "bundle")
    return out


pytestmark = needs_sample


@pytest.fixture
def torch_threads():
    """Restores torch's process-wide thread count after a test that sets it (--threads)."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_predict_on_the_jigsaw_sample_equals_eval_predictions(run, bundle_dir, tmp_path, capsys, torch_threads):
    """The run's predictions.csv (its test rows, scored by the evaluation after training) against
    `modlab predict` over the whole sample file: the bundle and the run dir at fp32."""
    expected = pd.read_csv(run / "predictions.csv", dtype={"id": str}).set_index("id")
    thresholds = np.array([json.loads((run / "thresholds.json").read_text())["thresholds"][n] for n in LABELS])
    # One torch thread: on a busy 2-vCPU machine every small op otherwise waits for the second thread.
    for source, extra in ((bundle_dir, []), (run, ["--precision", "fp32", "--threads", "1"])):
        out = tmp_path / f"{Path(source).name}.csv"
        assert cli.main(["predict", str(source), "--input", str(JIGSAW_SAMPLE / "train.csv"), "--output", str(out),
                         "--batch-size", "16", *extra]) == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        got = pd.read_csv(out, dtype={"id": str}).set_index("id")
        assert list(got.columns) == PROBS + FLAGS and len(got) == 2886
        assert f"wrote 2,886 rows to {out}" in line and "truncated at max_length=32" in line, line
        assert int(line.split(" texts truncated")[0].rsplit(" ", 1)[-1].replace(",", "")) > 0
        rows = got.loc[expected.index]
        assert np.abs(rows[PROBS].to_numpy() - expected[PROBS].to_numpy()).max() <= 1e-4, source
        clear = np.abs(got[PROBS].to_numpy() - thresholds) > 1e-6  # flags come from the unrounded probabilities
        assert (got[FLAGS].to_numpy() == (got[PROBS].to_numpy() >= thresholds))[clear].all()


def test_the_classifier_api_is_the_same_for_every_source(run, bundle_dir):
    texts = ["you are great", "", None, "shut up, you idiot " * 40, "ünïcödé 😀"]
    reference = modlab.load(run, precision="fp32")
    default = modlab.load(run)
    served = modlab.load(bundle_dir, threads=1)
    ckpt = modlab.load(run / "checkpoints" / "best.ckpt", precision="fp32")
    assert default.precision == ("bf16" if backends.cpu_has_native_bf16() else "fp32") and default.backend == "torch"
    assert (served.backend, served.precision, served.device) == ("onnxruntime", "fp32", "cpu")
    tuned = json.loads((run / "thresholds.json").read_text())["thresholds"]
    for clf in (reference, default, served, ckpt):
        assert isinstance(clf, Classifier) and clf.labels == LABELS and clf.max_length == 32
        assert clf.thresholds == pytest.approx(tuned)
    probs = reference.predict_proba(texts)
    assert probs.dtype == np.float32 and probs.shape == (5, 6) and np.isfinite(probs).all()
    assert np.abs(served.predict_proba(texts) - probs).max() <= 1e-4
    assert np.abs(ckpt.predict_proba(texts) - probs).max() == 0.0
    assert np.abs(default.predict_proba(texts) - probs).max() < 0.05  # bf16 autocast where the CPU has it

    # Batching, sorting and padding never change a text's scores; a lone string is one text.
    shuffled = [texts[i] for i in (3, 0, 4, 1, 2)]
    one_by_one = modlab.load(bundle_dir, batch_size=1).predict_proba(shuffled)
    assert np.abs(one_by_one - served.predict_proba(texts)[[3, 0, 4, 1, 2]]).max() <= 1e-5
    assert np.abs(served.predict_proba("you are great") - served.predict_proba(texts)[:1]).max() <= 1e-5
    scored = served.score(texts)
    assert scored.truncated.tolist() == [False, False, False, True, False]
    assert scored.empty.tolist() == [False, True, True, False, False]

    result = served.predict(texts)
    assert len(result) == 5 and set(result[0]) == {"scores", "flagged"} and list(result[0]["scores"]) == LABELS
    for row, p in zip(result, served.predict_proba(texts), strict=True):
        assert row["flagged"] == [n for n, v in zip(LABELS, p, strict=True) if v >= tuned[n]]
    assert served.predict_proba([]).shape == (0, 6)
    one_line(lambda: served.predict_proba(["ok", 3]), "texts[1] is a int")
    one_line(lambda: modlab.load(run, precision="fp8"), "precision='fp8'")
    one_line(lambda: modlab.load(run, precision="int8"), "--precision int8")


@pytest.mark.parametrize("native_bf16", [True, False])
def test_bf16_asked_for_on_a_cpu_that_emulates_it_is_warned_about(run, monkeypatch, caplog, native_bf16):
    from modlab import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native_bf16)
    with caplog.at_level(logging.WARNING, logger="modlab.precision"):
        clf = modlab.load(run, precision="bf16", device="cpu")
        modlab.load(run, precision="fp32", device="cpu")
    said = [r.getMessage() for r in caplog.records if "emulated" in r.getMessage()]
    assert clf.precision == "bf16" and len(said) == (0 if native_bf16 else 1)
    assert native_bf16 or "leave precision unset" in said[0]


def test_text_jsonl_and_stdin_inputs_stream_in_order(bundle_dir, tmp_path, monkeypatch, capsys):
    served = modlab.load(bundle_dir)
    lines = ["first text", "", "third, with a comma", "fourth \"quoted\"", "fifth"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    counts = batch.run(str(bundle_dir), str(tmp_path / "in.txt"), str(out), chunk_rows=2)  # 3 chunks
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["1", "2", "3", "4", "5"] and counts.rows == 5 and counts.empty == 1
    got = np.array([[r[c] for c in PROBS] for r in records])
    assert np.abs(got - served.predict_proba(lines)).max() <= 1e-5
    captured = capsys.readouterr()
    assert "warning: 1 empty texts" in captured.err and "wrote 5 rows" in captured.out

    rows = [{"key": f"k{i}", "body": t} for i, t in enumerate(lines)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert cli.main(["predict", str(bundle_dir), "--input", str(tmp_path / "in.jsonl"), "--output",
                     str(tmp_path / "j.csv"), "--text-column", "body", "--id-column", "key"]) == 0
    frame = pd.read_csv(tmp_path / "j.csv", dtype={"id": str})
    assert frame["id"].tolist() == [r["key"] for r in rows]
    assert np.abs(frame[PROBS].to_numpy() - got).max() <= 1e-5

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\n".join(lines).encode())))
    assert cli.main(["predict", str(bundle_dir), "--input", "-", "--output", str(tmp_path / "s.csv")]) == 0
    stdin_probs = pd.read_csv(tmp_path / "s.csv")[PROBS].to_numpy()
    assert np.abs(stdin_probs - got).max() <= 1e-5


def test_bad_bundles_are_one_line(bundle_dir, tmp_path, capsys):
    import shutil

    tampered = tmp_path / "tampered"
    shutil.copytree(bundle_dir, tampered)
    data = (tampered / "model.onnx").read_bytes()
    (tampered / "model.onnx").write_bytes(data[: len(data) // 2])  # truncated
    one_line(lambda: modlab.load(tampered), "model.onnx", "does not match modlab.json", "truncated")
    (tampered / "model.onnx").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit changed
    out = tmp_path / "o.csv"
    (tmp_path / "in.txt").write_text("hello\n")
    cli_fails(capsys, ["predict", str(tampered), "--input", str(tmp_path / "in.txt"), "--output", str(out)],
              "sha256", "does not match")
    assert not out.exists()

    edited = tmp_path / "edited"
    shutil.copytree(bundle_dir, edited)
    meta = json.loads((edited / "modlab.json").read_text())
    meta["thresholds"].pop("threat")
    (edited / "modlab.json").write_text(json.dumps(meta))
    one_line(lambda: modlab.load(edited), "modlab.json", "\"thresholds\" are for", "\"labels\" are")
    (edited / "modlab.json").write_text("{not json")
    one_line(lambda: modlab.load(edited), "modlab.json", "not valid JSON")

    (tmp_path / "empty-run").mkdir()
    one_line(lambda: modlab.load(tmp_path / "empty-run"), "neither a bundle", "checkpoints/best.ckpt")
    path, marker = crafted_checkpoint(tmp_path)
    one_line(lambda: modlab.load(path), "not loaded (loading it could run code)")
    cli_fails(capsys, ["predict", str(path), "--input", str(tmp_path / "in.txt"), "--output", str(out)],
              "not loaded (loading it could run code)")
    assert not marker.exists() and not out.exists()


def test_bad_predict_input_is_one_line_and_writes_nothing(bundle_dir, tmp_path, capsys):
    out = tmp_path / "outs" / "scores.csv"
    (tmp_path / "no_text.csv").write_text("id,body\n1,hello\n")
    cli_fails(capsys, ["predict", str(bundle_dir), "--input", str(tmp_path / "no_text.csv"), "--output", str(out)],
              "no_text.csv", "no text column 'comment_text' or 'text'", "id, body", "--text-column")
    cli_fails(capsys, ["predict", str(bundle_dir), "--input", str(tmp_path / "no_text.csv"), "--output", str(out),
                       "--text-column", "comment"], "'comment'", "--text-column")

    (tmp_path / "latin1.txt").write_bytes("fine\nalso fine\ncaf\xe9 au lait\n".encode("latin-1"))
    cli_fails(capsys, ["predict", str(bundle_dir), "--input", str(tmp_path / "latin1.txt"), "--output", str(out)],
              "latin1.txt: line 3", "not valid UTF-8")
    (tmp_path / "latin1.csv").write_bytes("id,text\n1,fine\n2,caf\xe9\n".encode("latin-1"))
    cli_fails(capsys, ["predict", str(bundle_dir), "--input", str(tmp_path / "latin1.csv"), "--output", str(out)],
              "latin1.csv: line 3", "not valid UTF-8")

    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "in.txt").write_text("hello\n")
    cli_fails(capsys, ["predict", str(bundle_dir), "--input", str(tmp_path / "in.txt"), "--output",
                       str(tmp_path / "a_file" / "scores.csv")], "cannot write --output", "writable path")
    cli_fails(capsys, ["predict", str(bundle_dir), "--input", str(tmp_path / "in.txt"), "--output",
                       str(tmp_path / "scores.parquet")], ".csv or .jsonl")
    cli_fails(capsys, ["predict", str(bundle_dir), "--input", str(tmp_path / "in.txt"), "--output", str(out),
                       "--precision", "fp8"], "precision='fp8'")
    cli_fails(capsys, ["predict", str(bundle_dir), "--input", str(tmp_path / "in.txt"), "--output", str(out),
                       "--batch-size", "0"], "--batch-size 0")
    assert not out.exists()
    no_leftovers(out.parent)


def test_an_interrupted_run_leaves_no_output(bundle_dir, tmp_path, monkeypatch):
    (tmp_path / "in.txt").write_text("".join(f"text {i}\n" for i in range(10)))
    out = tmp_path / "scores.csv"
    out.write_text("an older output\n")
    calls = []

    def score_then_stop(self, texts):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C halfway
        return original(self, texts)

    original = Classifier.score
    monkeypatch.setattr(Classifier, "score", score_then_stop)
    with pytest.raises(KeyboardInterrupt):
        batch.run(str(bundle_dir), str(tmp_path / "in.txt"), str(out), chunk_rows=4)
    assert out.read_text() == "an older output\n"  # untouched, never half replaced
    no_leftovers(tmp_path)
