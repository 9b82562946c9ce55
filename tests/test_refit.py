"""refit=true: after selection a fresh model trains on train + val; it is the run's model and test scores it."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from modlab.errors import ModlabError
from modlab.rundir import RunDir
from modlab.training import checkpoints
from modlab.training.train import run


def _metrics(out: RunDir) -> dict:
    return json.loads(out.file("metrics.json").read_text())


def test_refit_trains_on_train_and_val_for_the_selected_epochs_and_ships_that_model(train_cfg, tmp_path):
    plain = train_cfg("trainer.max_epochs=2", "callbacks.early_stopping=null")
    plain_dir = RunDir(plain.paths.output_dir)  # paths.output_dir follows the config composed last
    run(plain)
    cfg = train_cfg("trainer.max_epochs=2", "callbacks.early_stopping=null", "refit=true")
    out = RunDir(cfg.paths.output_dir)
    run(cfg)
    before, metrics = _metrics(plain_dir), _metrics(out)
    selected = checkpoints.read(out.best_checkpoint)["epoch"] + 1
    splits = json.loads(out.file("splits.json").read_text())
    assert metrics["refit/epochs"] == selected
    assert metrics["refit/train_rows"] == len(splits["train"]) + len(splits["val"])
    # val comes from the selection fit (the same as without refit), test from the refit model
    assert metrics["val/auroc_macro"] == before["val/auroc_macro"]
    assert not any(k.startswith("val/robust/") for k in metrics) and "test/robust/clean/auroc_macro" in metrics
    probs = [pd.read_csv(r.file("predictions.csv")).filter(like="prob_") for r in (plain_dir, out)]
    assert len(probs[0]) == len(splits["test"]) and not np.allclose(probs[0], probs[1])
    refit = checkpoints.read(out.refit_checkpoint)
    assert refit["epoch"] == selected and "optimizer_states" not in refit  # saved after its last epoch
    assert out.model_checkpoint == out.refit_checkpoint
    best = checkpoints.read(out.best_checkpoint)["state_dict"]
    assert any(not torch.equal(best[k], v) for k, v in refit["state_dict"].items())
    # the thresholds tuned on val by the selected checkpoint are the ones test is scored at
    thresholds = json.loads(out.file("thresholds.json").read_text())
    assert thresholds == json.loads(plain_dir.file("thresholds.json").read_text())


def test_refit_epochs_trains_all_non_test_rows_without_a_selection_fit(train_cfg):
    cfg = train_cfg("refit=true", "refit_epochs=2", "optimized_metric=test/auroc_macro")
    out = RunDir(cfg.paths.output_dir)
    run(cfg)
    metrics = _metrics(out)
    assert metrics["refit/epochs"] == 2 and "test/auroc_macro" in metrics
    assert not any(k.startswith("val/") and not k.startswith("val/threshold") for k in metrics)
    assert not out.best_checkpoint.exists() and out.model_checkpoint == out.refit_checkpoint


def test_eval_takes_the_refit_model_and_refuses_its_val_rows_as_held_out(train_cfg, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    from modlab.rundir import locate

    cfg = train_cfg("trainer.max_epochs=1", "refit=true")
    out = RunDir(cfg.paths.output_dir)
    run(cfg)
    ckpt, found = locate(out.path)
    assert ckpt == out.refit_checkpoint and found == out

    def eval_py(*args):
        return subprocess.run([sys.executable, str(ROOT / "eval.py"), f"ckpt_path={out.path}", *args,
                               f"hydra.run.dir={tmp_path / 'eval'}"], capture_output=True,
                              text=True, timeout=300, cwd=ROOT)

    scored = eval_py()
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test/auroc_macro"] == pytest.approx(
        _metrics(out)["test/auroc_macro"], abs=1e-6)
    refused = eval_py("split=val")  # the refit model trained on them
    assert refused.returncode == 2 and "training rows (train + val: the checkpoint is refit.ckpt)" in refused.stderr


@pytest.mark.parametrize(("overrides", "needle"), [
    (["refit_epochs=2"], "refit_epochs=2 trains on train + val only with refit=true"),
    (["refit=true", "refit_epochs=2", "test=false"], "would score nothing"),
    (["refit=true", "refit_epochs=0"], "refit_epochs=0 is out of range"),
    (["refit=maybe"], "refit='maybe' has the wrong type"),
    (["refit=true", "refit_epochs=2"], "optimized_metric='val/auroc_macro' is no metric this run writes"),
])
def test_bad_refit_settings_are_one_line_errors(train_cfg, overrides, needle):
    with pytest.raises(ModlabError, match=needle.replace("+", r"\+").replace("(", r"\(")) as err:
        run(train_cfg(*overrides))
    assert "\n" not in str(err.value)
