"""Bad input fails before work starts, with one line naming the key / file / row, the value and the fix.

Table-driven: config values (CONFIG_CASES, EVAL_CASES) run in-process through `run()` and must raise a one-line
ModlabError before anything is written; a few real `python train.py` / `python eval.py` subprocesses check
what a user sees (exit 2, one `error:` line, no traceback, no outputs beyond Hydra's config and the log). Bad
data files beyond the ones here are in tests/test_data_bad_input.py (missing columns, non-0/1 labels, quoting,
encodings, duplicate ids, ...); crafted checkpoints in tests/test_checkpoint_security.py."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT

from modlab.errors import ModlabError
from modlab.evaluation import score_checkpoint
from modlab.training import train


def one_line(call, *parts: str) -> str:
    with pytest.raises(ModlabError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


# (overrides, words the one-line error must contain): what the issue saw crash or pass silently, and the rest
# of each schema's type / range / choice checks
CONFIG_CASES = [
    (["data.batch_size=abc"], ["data.batch_size='abc'", "wrong type", "an integer >= 1", "data.batch_size=32"]),
    (["data.batch_size=0"], ["data.batch_size=0", "out of range", "an integer >= 1"]),
    (["data.batch_size=32.5"], ["data.batch_size=32.5", "wrong type"]),
    (["data.max_length=0"], ["data.max_length=0", "out of range", ">= 3"]),
    (["data.max_length=1"], ["data.max_length=1", ">= 3"]),
    (["data.val_size=1.5"], ["data.val_size=1.5", "in [0, 1)"]),
    (["data.num_workers=-1"], ["data.num_workers=-1", ">= 0"]),
    (["optim.scheduler=bogus"], ["optim.scheduler='bogus'", "cosine", "linear"]),
    (["optim.scheduler=cosin"], ["optim.scheduler='cosin'", "did you mean cosine"]),
    (["optim.lr=-0.1"], ["optim.lr=-0.1", "a number > 0"]),
    (["optim.head_lr=0"], ["optim.head_lr=0", "a number > 0 or null"]),
    (["optim.warmup_ratio=2"], ["optim.warmup_ratio=2", "in [0, 1]"]),
    (["trainer.max_epochs=abc"], ["trainer.max_epochs='abc'", "wrong type", "an integer >= -1 or null"]),
    (["trainer.max_steps=-5"], ["trainer.max_steps=-5", ">= -1"]),
    (["trainer.accumulate_grad_batches=0"], ["trainer.accumulate_grad_batches=0", ">= 1"]),
    (["loss=focal", "loss.gamma=-1"], ["loss.gamma=-1", "a number >= 0"]),
    (["loss=focal", "loss.alpha=2"], ["loss.alpha=2", "in [0, 1]"]),
    (["loss=weighted_bce", "loss.transform=cube"], ["loss.transform='cube'", "none, sqrt"]),
    (["thresholds.objective=f2"], ["thresholds.objective='f2'", "f1, precision, recall"]),
    (["thresholds.default=2"], ["thresholds.default=2", "in [0, 1]"]),
    (["report.showcase=-1"], ["report.showcase=-1", ">= 0"]),
    (["gate.fail=maybe"], ["gate.fail='maybe'", "true or false"]),
    (["seed=abc"], ["seed='abc'", "an integer"]),
    (["optim.layer_decay=1.5"], ["optim.layer_decay=1.5", "in (0, 1]"]),
    (["backbone.reinit_layers=-1"], ["backbone.reinit_layers=-1", ">= 0"]),
    (["backbone.freeze_layers=-2"], ["backbone.freeze_layers=-2", ">= 0"]),
    (["head.samples=0"], ["head.samples=0", ">= 1"]),
    (["head.dropout=1"], ["head.dropout=1", "in [0, 1)"]),
    (["test=maybe"], ["test='maybe'", "true or false"]),
    (["monitor.mode=maximum"], ["monitor.mode='maximum'", "did you mean max", "min, max"]),
    (["monitor.metric=val/auroc_marco"], ["monitor.metric='val/auroc_marco'", "did you mean", "val/auroc_macro"]),
    (["monitor.metric=val/f1"], ["monitor.metric='val/f1'", "never logged", "val/f1_macro"]),  # no bare val/f1
    (["monitor.metric=val/f1_tuned_macro"], ["never logged"]),  # tuned after fitting, never logged during it
    (["optimized_metric=val/f1_macor"], ["optimized_metric='val/f1_macor'", "NaN", "val/f1_macro"]),
    (["optimized_metric=auroc"], ["optimized_metric='auroc'", "NaN", "model/"]),
    (["optimized_metric=train/loss"], ["optimized_metric='train/loss'", "NaN", "val/test/"]),
    (["test=false", "optimized_metric=test/auroc_macro"], ["'test/auroc_macro'", "test=false", "set test=true"]),
    (["thresholds.tune=false", "optimized_metric=val/f1_tuned_macro"], ["'val/f1_tuned_macro'", "NaN"]),
    (["bias.enabled=false", "optimized_metric=val/bias/final"], ["'val/bias/final'", "bias.enabled=true"]),
]


@pytest.mark.parametrize(("overrides", "words"), CONFIG_CASES, ids=[" ".join(c[0]) for c in CONFIG_CASES])
def test_bad_config_is_one_line_before_data(train_cfg, overrides, words):
    cfg = train_cfg(*overrides)
    one_line(lambda: train.run(cfg), *words)
    assert not os.path.exists(cfg.paths.output_dir)  # failed before writing anything, config.yaml included


EVAL_CASES = [
    (["optimized_metric=val/auroc_macro"], ["'val/auroc_macro'", "eval.py writes test/"]),
    (["optimized_metric=model/params"], ["'model/params'", "no model/"]),
    (["data.eval_batch_size=0"], ["data.eval_batch_size=0", ">= 1"]),
]


@pytest.mark.parametrize(("overrides", "words"), EVAL_CASES, ids=[" ".join(c[0]) for c in EVAL_CASES])
def test_bad_eval_config_is_one_line_before_the_checkpoint_is_read(tmp_path, overrides, words):
    from conftest import compose_config

    cfg = compose_config("eval", [f"ckpt_path={tmp_path / 'missing.ckpt'}", *overrides], tmp_path / "eval")
    one_line(lambda: score_checkpoint.run(cfg), *words)  # not "does not exist": the config is checked first


def test_valid_metric_names_pass(train_cfg):
    from modlab import config_schema

    for name in ("val/loss", "val/f1_macro", "val/auprc_micro", "val/recall/toxic", "val/positives/toxic",
                 "test/f1_tuned_macro", "test/precision_tuned/threat", "val/threshold/toxic", "test/bias/final",
                 "test/robust/leetspeak/auroc_macro", "model/latency_ms", "test/examples"):
        config_schema.check(train_cfg(f"optimized_metric={name}"))
    for name in ("val/loss", "train/loss", "val/f1/toxic", "val/auprc_micro"):
        config_schema.check(train_cfg(f"monitor.metric={name}"))
    config_schema.check(train_cfg("trainer.max_steps=40"))
    # once the labels are known, a per-label name must name one of them
    one_line(lambda: config_schema.check_names(train_cfg("monitor.metric=val/f1/toxc"), ["toxic", "threat"]),
             "val/f1/toxc", "val/f1/toxic")
    one_line(lambda: config_schema.check_names(train_cfg("optimized_metric=test/auroc/thret"), ["toxic", "threat"]),
             "test/auroc/thret", "test/auroc/threat")


def test_values_are_converted_to_the_schema_type(train_cfg):
    from modlab import config_schema

    cfg = train_cfg("data.batch_size='16'", "test='no'")
    config_schema.check(cfg)
    assert cfg.data.batch_size == 16 and cfg.test is False  # what the code reads is what was checked


def test_schemas_name_real_config_keys(train_cfg):
    """A schema field no config has is a check that never runs: renaming a key must update its schema."""
    from omegaconf import OmegaConf

    from modlab import config_schema

    cfg = train_cfg(fast=False)
    losses = [OmegaConf.load(p) for p in sorted((ROOT / "conf" / "loss").glob("*.yaml"))]
    for block, schema in config_schema.SCHEMAS.items():
        names = [f.name for f in dataclasses.fields(schema)]
        if block == "loss":
            missing = [n for n in names if not any(n in loss for loss in losses)]
        elif block == "trainer":
            missing = [n for n in names if n != "min_epochs" and n not in cfg.trainer]  # min_epochs: Lightning's
        else:
            missing = [n for n in names if n not in (cfg if block is None else cfg[block])]
        assert not missing, (block, missing)


def _bad_ckpts(tmp_path):
    good = zipfile.ZipFile(tmp_path / "z.zip", "w")
    good.writestr("archive/data.pkl", b"\x80\x02}q\x00." * 50)
    good.close()
    data = (tmp_path / "z.zip").read_bytes()
    files = {"truncated": data[: len(data) // 2], "random": os.urandom(4096), "empty": b"",
             "text": b"this is not a checkpoint\n"}
    out = {}
    for kind, content in files.items():
        path = tmp_path / f"{kind}.ckpt"
        path.write_bytes(content)
        out[kind] = path
    return out


@pytest.mark.parametrize("kind", ["truncated", "random", "empty", "text"])
def test_bad_checkpoint_files_are_one_line(train_cfg, tmp_path, kind):
    path = _bad_ckpts(tmp_path)[kind]
    cfg = train_cfg(f"ckpt_path={path}")
    one_line(lambda: train.run(cfg), str(path))
    from conftest import compose_config

    ecfg = compose_config("eval", [f"ckpt_path={path}"], tmp_path / "eval")
    one_line(lambda: score_checkpoint.run(ecfg), str(path))


def test_max_steps_partial_epoch_validates_and_writes_metrics(train_cfg):
    cfg = train_cfg("trainer.max_steps=3", "trainer.max_epochs=-1", "test=false", "robust.enabled=false",
                    "report.enabled=false")
    train.run(cfg)
    import json

    run_dir = cfg.paths.output_dir
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert "val/auroc_macro" in metrics  # the partial epoch was validated: the monitored metric exists
    assert os.path.exists(os.path.join(run_dir, "checkpoints", "best.ckpt"))


# (script, overrides): one of each kind (type, choice, metric name, unreadable checkpoint) as a user runs it
SUBPROCESS_CASES = [
    ("train.py", ["data.batch_size=abc"], "data.batch_size='abc'"),
    ("train.py", ["monitor.metric=val/auroc_marco"], "monitor.metric='val/auroc_marco'"),
    ("eval.py", ["ckpt_path={text_ckpt}"], "is not a PyTorch checkpoint"),
]


def test_entry_points_exit_2_with_one_error_line_and_no_outputs(tmp_path):
    """Real `python train.py` / `python eval.py` runs, started together (each spends its time importing torch):
    exit 2, one `error:` line, no traceback, and nothing in the run dir beyond Hydra's config and the log."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", MODLAB_ROOT=str(tmp_path))
    text_ckpt = tmp_path / "text.ckpt"
    text_ckpt.write_text("this is not a checkpoint\n")
    procs = []
    for i, (script, overrides, _) in enumerate(SUBPROCESS_CASES):
        args = [o.format(text_ckpt=text_ckpt) for o in overrides] + [f"hydra.run.dir={tmp_path / f'run{i}'}"]
        procs.append(subprocess.Popen([sys.executable, script, "backbone.tiny=true", *args], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for i, ((_, overrides, words), proc) in enumerate(zip(SUBPROCESS_CASES, procs, strict=True)):
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, (overrides, stderr[-2000:])
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and words in errors[0], (overrides, stderr[-2000:])
        assert "Traceback" not in stderr
        left = sorted(p.name for p in (tmp_path / f"run{i}").iterdir())
        assert set(left) <= {".hydra", "train.log", "eval.log"}, (overrides, left)


# --- data files ---------------------------------------------------------------------------------------------


def _jsonl(tmp_path, lines: list[str]):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_quoted_number_is_not_several_targets(tmp_path):
    from modlab.data import jsonl

    path = _jsonl(tmp_path, ['{"text": "a", "labels": {"toxic": 0, "insult": 0}}',
                             '{"text": "b", "labels": {"toxic": "1", "insult": 0}}'])
    msg = one_line(lambda: jsonl.read(path), f"{path}: line 2", "'toxic'", "0/1 numbers")
    assert "several targets" not in msg
    path = _jsonl(tmp_path, ['{"text": "b", "labels": {"toxic": "1"}}'])
    one_line(lambda: jsonl.read(path), f"{path}: line 1", "'toxic'", "0/1 numbers")


def test_jsonl_label_misspelt_by_case_names_line_and_label(tmp_path):
    from modlab.data import jsonl

    rows = [f'{{"text": "t{i}", "labels": ["toxic"]}}' for i in range(5)] + ['{"text": "x", "labels": ["Toxic"]}']
    path = _jsonl(tmp_path, rows)
    one_line(lambda: jsonl.read(path), f"{path}: line 6", "'Toxic'", "'toxic'", "only by case")
    # a pinned taxonomy already rejects the spelling (no inference involved)
    one_line(lambda: jsonl.read(path, labels=["toxic"]), "'Toxic'", "not in the taxonomy")


def test_jsonl_label_misspelt_on_a_few_rows_warns_loudly(tmp_path, caplog):
    from modlab.data import jsonl

    rows = [f'{{"text": "t{i}", "labels": ["insult"]}}' for i in range(30)]
    rows += ['{"text": "x", "labels": ["insutl"]}', '{"text": "y", "labels": ["insutl"]}']
    path = _jsonl(tmp_path, rows)
    with caplog.at_level("WARNING"):
        assert jsonl.read(path).label_names == ["insult", "insutl"]  # still read: the spelling might be meant
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 1 and f"{path}: line 31" in lines[0] and "misspelling of 'insult'" in lines[0], lines


def test_jsonl_label_on_one_row_warns_and_training_reaches_nan(tmp_path, train_cfg, caplog):
    import json

    rows = [json.dumps({"text": f"you idiot number {i}" if i % 2 else f"hello friend {i}",
                        "labels": ["insult"] if i % 2 else ["safe"]}) for i in range(120)]
    rows.append(json.dumps({"text": "i will find you", "labels": ["threat"]}))
    path = _jsonl(tmp_path, rows)
    from conftest import FAST

    fast = [o for o in FAST if not o.startswith("dataset.")]
    cfg = train_cfg(*fast, "dataset=jsonl", f"dataset.path={path}", "test=false", "robust.enabled=false",
                    "report.enabled=false", "bias.enabled=false", fast=False)
    with caplog.at_level("WARNING"):
        train.run(cfg)
    assert any("'threat' appears on this row only" in r.getMessage() and f"{path}: line 121" in r.getMessage()
               for r in caplog.records)
    with open(os.path.join(cfg.paths.output_dir, "metrics.json")) as f:
        metrics = json.load(f)
    value = metrics["val/auroc/threat"]  # NaN (written as null), as the README promises; no crash at epoch end
    assert value is None or value != value, value


def test_csv_row_with_other_field_count_names_the_row(tmp_path):
    from modlab.data import jigsaw

    header = "id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate\n"
    (tmp_path / "train.csv").write_text(header + "a1,hi,0,0,0,0,0,0\na2,short,0,0,0\n", encoding="utf-8")
    one_line(lambda: jigsaw.read(tmp_path), "train.csv: line 3", "5 fields", "header has 8")
    (tmp_path / "train.csv").write_text(header + "a1,hi,0,0,0,0,0,0,9\na2,yo,0,0,0,0,0,0,9\n", encoding="utf-8")
    one_line(lambda: jigsaw.read(tmp_path), "train.csv: line 2", "9 fields", "header has 8")


# --- other commands -----------------------------------------------------------------------------------------


def test_compare_unknown_sort_lists_valid_metrics(tmp_path, capsys):
    import json

    from modlab.cli import main

    for name in ("r1", "r2"):
        run = tmp_path / name
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({"val/auroc_macro": 0.8, "test/auroc_macro": 0.7,
                                                      "test/auroc/toxic": 0.7}))
    assert main(["compare", str(tmp_path), "--sort", "test/aurc_macro"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test/aurc_macro" in err[0] and "test/auroc_macro" in err[0], err


def test_data_synth_out_directory(tmp_path, capsys):
    from modlab.cli import main

    assert main(["data", "synth", "--out", str(tmp_path), "--size", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a directory" in err[0] and "synthetic.jsonl" in err[0], err


def test_bogus_backbone_name_with_tiny_warns(caplog):
    from modlab.models import backbones

    with caplog.at_level("WARNING"):
        backbones.resolve("no-such/model", tiny=True)
    assert any("'no-such/model'" in r.getMessage() and "NOT checked" in r.getMessage() for r in caplog.records)
