"""Bad command-line input fails before any data is read, with one line naming the key, the value and the fix:
in-process through `run()` for most cases, plus a few real `python train.py` subprocesses (exit 2)."""

from __future__ import annotations

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


# (overrides, words the one-line error must contain)
CONFIG_CASES = [
    (["data.batch_size=abc"], ["data.batch_size", "abc", "wrong type"]),
    (["data.batch_size=0"], ["data.batch_size=0", "must be > 0"]),
    (["optim.scheduler=bogus"], ["optim.scheduler='bogus'", "cosine", "linear"]),
    (["trainer.max_epochs=abc"], ["trainer.max_epochs", "abc", "wrong type"]),
    (["monitor.metric=val/auroc_marco"], ["monitor.metric='val/auroc_marco'", "did you mean", "val/auroc_macro"]),
    (["data.max_length=0"], ["data.max_length=0", "must be > 0"]),
    (["optim.lr=-0.1"], ["optim.lr=-0.1", "must be > 0"]),
    (["loss=focal", "loss.gamma=-1"], ["loss.gamma=-1", "must be >= 0"]),
    (["optimized_metric=val/f1_macor"], ["optimized_metric='val/f1_macor'", "NaN", "val/f1_macro"]),
    (["optimized_metric=auroc"], ["optimized_metric='auroc'", "NaN", "model/params"]),
]


@pytest.mark.parametrize(("overrides", "words"), CONFIG_CASES, ids=[" ".join(c[0]) for c in CONFIG_CASES])
def test_bad_config_is_one_line_before_data(train_cfg, overrides, words):
    cfg = train_cfg(*overrides)
    one_line(lambda: train.run(cfg), *words)
    assert not (cfg.paths.output_dir and os.path.exists(os.path.join(cfg.paths.output_dir, "splits.json")))


def test_valid_metric_names_pass(train_cfg):
    from modlab import config_schema

    for name in ("val/loss", "val/f1", "val/auprc_micro", "val/recall/toxic", "test/bias/final",
                 "test/robust/leetspeak/auroc_macro", "model/latency_ms"):
        cfg = train_cfg(f"optimized_metric={name}")
        config_schema.check(cfg)
    config_schema.check(train_cfg("trainer.max_steps=40"))
    one_line(lambda: config_schema.check_names(train_cfg("monitor.metric=val/f1/toxc"), ["toxic", "threat"]),
             "val/f1/toxc", "val/f1/toxic")


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
    run_dir = cfg.paths.output_dir
    assert os.path.exists(os.path.join(run_dir, "metrics.json"))
    assert os.path.exists(os.path.join(run_dir, "checkpoints", "best.ckpt")) or os.listdir(
        os.path.join(run_dir, "checkpoints"))


SUBPROCESS_CASES = [
    ["data.batch_size=abc"],
    ["optim.scheduler=bogus"],
    ["monitor.metric=val/auroc_marco"],
]


@pytest.mark.parametrize("overrides", SUBPROCESS_CASES, ids=[c[0] for c in SUBPROCESS_CASES])
def test_train_py_exits_2_with_one_error_line(tmp_path, overrides):
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", MODLAB_ROOT=str(tmp_path))
    proc = subprocess.run([sys.executable, "train.py", "backbone.tiny=true", *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
