"""modlab export: a bundle for every head and backbone family, parity at export, and bad input as one line.

One tiny run trained on the Jigsaw sample (shared with test_predict.py through `trained_run`) covers what a
run dir adds (held-out parity, thresholds, max_length, metrics); the head x family round trips use bare
checkpoints of tiny random-init models, which export against synthetic texts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST, JIGSAW_SAMPLE, compose_config
from test_bad_input_cli import one_line

import modlab
from modlab import cli
from modlab.export import bundle, parity
from modlab.export.pipeline import export

LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
TEXTS = ["you are a wonderful person", "", "I will find you and hurt you, idiot", "ok " * 300, "ünïcödé 😀"]
# Every head and every backbone family, each at least once.
CASES = [("minilm", "attention"), ("distilbert", "cls"), ("distilroberta", "mean"), ("mpnet", "attention")]
# fp32: `modlab predict` at fp32 must equal the run's own predictions.csv within 1e-4 (test_predict.py).
TRAIN = ["backbone.tiny=true", "dataset=jigsaw", f"dataset.path={JIGSAW_SAMPLE}", "trainer.max_epochs=1",
         "trainer.precision=32",
         "callbacks.progress_bar=null", "data.max_length=32", "logger=none", "robust.enabled=false",
         "report.enabled=false", "+trainer.limit_train_batches=8"]
needs_sample = pytest.mark.skipif(not JIGSAW_SAMPLE.is_dir(), reason="the shared Jigsaw sample is not there")


def trained_run(tmp_path_factory) -> Path:
    """The tiny MiniLM run on the Jigsaw sample, trained once per test session (both test files use it)."""
    from modlab.training.train import run

    out = tmp_path_factory.getbasetemp() / "export-jigsaw-run"
    if not (out / "metrics.json").is_file():
        run(compose_config("train", TRAIN, out))
    return out


def bare_checkpoint(path: Path, backbone: str, head: str, tmp: Path, labels: list[str] = LABELS) -> Path:
    """A modlab checkpoint of a tiny random-init model, outside any run dir (what Lightning saves, minus state
    a module does not need: the state_dict and the plain hyperparameters)."""
    from modlab.training import assemble

    cfg = compose_config("train", [*FAST, f"backbone={backbone}", f"head={head}"], tmp)
    module = assemble.build_module(cfg, assemble.Backbone.resolve(cfg.backbone), labels)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": json.loads(json.dumps(dict(module.hparams)))},
               path)
    return path


def cli_fails(capsys, argv: list[str], *parts: str) -> str:
    """`modlab <argv>` exits 2 with one `error:` line holding every part."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for part in parts:
        assert part in err, f"{part!r} not in {err!r}"
    return err


def no_leftovers(directory: Path) -> None:
    assert not [p.name for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


@pytest.mark.parametrize(("backbone", "head"), CASES, ids=[f"{b}-{h}" for b, h in CASES])
def test_bundle_round_trip_for_every_head_and_family(tmp_path, capsys, backbone, head):
    ckpt = bare_checkpoint(tmp_path / "model.ckpt", backbone, head, tmp_path / "cfg")
    out = tmp_path / "bundle"
    assert cli.main(["export", str(ckpt), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "parity fp32" in said and "synthetic texts" in said and ": pass" in said, said

    meta = json.loads((out / bundle.METADATA).read_text())
    assert {p.name for p in out.iterdir()} >= {"model.onnx", "modlab.json", "tokenizer.json"}
    assert meta["labels"] == LABELS and meta["thresholds"] == dict.fromkeys(LABELS, 0.5)
    assert meta["max_length"] == 128 and "default" in meta["max_length_source"]
    assert meta["backbone"]["tiny"] is True and meta["head"].lower().startswith(head)
    assert meta["model"]["sha256"] == bundle.sha256(out / "model.onnx") and meta["precision"] == "fp32"
    assert meta["parity"]["passed"] and meta["parity"]["max_abs_delta"] <= parity.MAX_ABS_DELTA
    assert meta["modlab_version"] == modlab.__version__
    assert not any(p.suffix == ".pkl" or p.name.endswith((".bin", ".pt", ".ckpt")) for p in out.iterdir())

    served, reference = modlab.load(out), modlab.load(ckpt, precision="fp32")
    assert (served.backend, served.precision) == ("onnxruntime", "fp32")
    assert (reference.backend, reference.precision) == ("torch", "fp32")
    got, expected = served.predict_proba(TEXTS), reference.predict_proba(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), len(LABELS))
    assert np.abs(got - expected).max() <= 1e-4
    assert served.predict(TEXTS)[2]["flagged"] == [n for n, p in zip(LABELS, got[2], strict=True) if p >= 0.5]


@needs_sample
def test_run_export_checks_parity_on_the_runs_test_split(tmp_path_factory, capsys):
    import onnx

    run = trained_run(tmp_path_factory)
    assert cli.main(["export", str(run)]) == 0  # the default bundle dir is inside the run
    said = capsys.readouterr().out
    out = run / "bundle-fp32"
    meta = json.loads((out / bundle.METADATA).read_text())
    test_ids = json.loads((run / "splits.json").read_text())["test"]
    assert f"the test split of {run}" in meta["parity"]["data"] and meta["parity"]["rows"] == len(test_ids)
    assert f"parity fp32 vs PyTorch fp32 on the test split of {run}" in said and ": pass" in said, said
    assert meta["parity"]["passed"] and meta["parity"]["max_abs_delta"] <= 1e-4 and meta["parity"]["auroc_delta"] <= 1e-4
    tuned = json.loads((run / "thresholds.json").read_text())["thresholds"]
    assert meta["thresholds"] == pytest.approx(tuned) and "tuned on val" in meta["thresholds_source"]
    assert meta["max_length"] == 32 and meta["source"]["run_dir"] == str(run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert meta["source"]["metrics"]["test/auroc_macro"] == pytest.approx(metrics["test/auroc_macro"])
    assert "val/f1_tuned_macro" in meta["source"]["metrics"]

    graph = onnx.load(str(out / "model.onnx"))
    dims = {i.name: [d.dim_param for d in i.type.tensor_type.shape.dim] for i in graph.graph.input}
    assert dims == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}
    assert {"Attention", "Sigmoid"} <= {n.op_type for n in graph.graph.node}  # fused attention, sigmoid inside

    # Exporting again replaces the bundle whole.
    first = bundle.sha256(out / "model.onnx")
    (out / "stale.txt").write_text("from before")
    assert cli.main(["export", str(run)]) == 0
    assert not (out / "stale.txt").exists() and bundle.sha256(out / "model.onnx") == first
    no_leftovers(run)


@needs_sample
def test_int8_and_fp16_bundles_carry_their_parity(tmp_path_factory, tmp_path):
    import onnx

    run = trained_run(tmp_path_factory)
    reference = modlab.load(run, precision="fp32").predict_proba(TEXTS)
    for precision, ops in (("int8", {"DynamicQuantizeLinear", "MatMulInteger"}), ("fp16", {"Cast"})):
        # A tiny barely-trained model scores everything near its thresholds, so decision agreement is no
        # quality signal here: --force keeps the bundle either way, and the figures must be recorded.
        out, result = export(run, out=tmp_path / precision, precision=precision, force=True)
        meta = json.loads((out / bundle.METADATA).read_text())
        assert meta["precision"] == precision and meta["parity"]["precision"] == precision
        assert meta["parity"]["tolerances"] == {"auroc_delta": parity.AUROC_DELTA, "agreement": parity.AGREEMENT}
        assert meta["parity"]["passed"] == (not meta["parity"]["misses"]) and 0.0 <= meta["parity"]["agreement"] <= 1
        assert meta["parity"]["forced"] == (not result.passed) and meta["parity"]["auroc_delta"] is not None
        graph = onnx.load(str(out / "model.onnx"))
        assert ops <= {n.op_type for n in graph.graph.node}
        if precision == "fp16":
            assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
            assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        clf = modlab.load(out)
        assert clf.precision == precision
        assert np.abs(clf.predict_proba(TEXTS) - reference).max() < 0.02
        one_line(lambda o=out: modlab.load(o, precision="fp32"), f"is a {precision} bundle", "--precision fp32")


@needs_sample
def test_a_parity_miss_fails_the_export_and_leaves_no_bundle(tmp_path_factory, tmp_path, monkeypatch):
    run = trained_run(tmp_path_factory)
    monkeypatch.setattr(parity, "MAX_ABS_DELTA", -1.0)  # no delta passes: every export misses
    target = tmp_path / "out" / "missed"
    one_line(lambda: export(run, out=target), "parity fp32", "MISS", "no bundle written", "--force")
    assert not target.exists()
    no_leftovers(target.parent)

    out, result = export(run, out=target, force=True)
    meta = json.loads((out / bundle.METADATA).read_text())["parity"]
    assert not result.passed and meta["passed"] is False and meta["forced"] is True and meta["misses"]
    assert modlab.load(out).labels == LABELS  # a forced bundle still loads; its metadata says what it missed


def test_bad_export_input_is_one_line(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("seed: 1\n")
    cli_fails(capsys, ["export", str(tmp_path / "run")], "neither a bundle", "checkpoints/best.ckpt")
    cli_fails(capsys, ["export", str(tmp_path / "missing")], "does not exist")

    ckpt = bare_checkpoint(tmp_path / "m.ckpt", "minilm", "mean", tmp_path / "cfg")
    cli_fails(capsys, ["export", str(ckpt), "--precision", "fp8"], "--precision 'fp8'", "fp32, fp16, int8")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    cli_fails(capsys, ["export", str(ckpt), "--out", str(tmp_path / "taken")], "not a modlab bundle")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"

    # A backbone that cannot be resolved offline (its directory was removed): backbones.resolve's one line.
    saved = torch.load(ckpt, weights_only=True)
    saved["hyper_parameters"]["backbone"] = {"name": str(tmp_path / "removed-model"), "family": "bert",
                                             "package": None, "tiny": False}
    torch.save(saved, tmp_path / "gone.ckpt")
    cli_fails(capsys, ["export", str(tmp_path / "gone.ckpt"), "--out", str(tmp_path / "g")],
              "is not available", "removed-model", "backbone.name=")
    assert not (tmp_path / "g").exists()


class WritesAFile:
    """Unpickling this runs os.system: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


def crafted_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"backbone": WritesAFile(marker), "labels": ["toxic"]}}, path)
    return path, marker


def test_a_crafted_checkpoint_runs_no_code_on_export(tmp_path, capsys):
    path, marker = crafted_checkpoint(tmp_path)
    cli_fails(capsys, ["export", str(path), "--out", str(tmp_path / "b")], "not loaded (loading it could run code)")
    assert not marker.exists() and not (tmp_path / "b").exists()
