"""Presets in experiments/ compose the way users call them and reproduce the seed recipes."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

EXPECTED = {
    "seed000_distilbert": {"backbone.family": "distilbert", "loss._target_": "modlab.models.losses.WeightedBCELoss",
                           "data.max_length": 256, "data.batch_size": 16, "optim.lr": 2e-5,
                           "optim.warmup_steps": 500, "trainer.max_epochs": 3},
    "seed001_baseline": {"backbone.family": "roberta", "head._target_": "modlab.models.heads.ClsHead",
                         "loss._target_": "modlab.models.losses.BCELoss", "data.max_length": 128},
    "seed001_custom": {"backbone.family": "roberta", "head._target_": "modlab.models.heads.AttentionHead",
                       "loss._target_": "modlab.models.losses.FocalLoss"},
    "seed002_mpnet": {"backbone.family": "mpnet", "head._target_": "modlab.models.heads.MeanHead"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_composes_to_its_recipe(train_cfg, name):
    from omegaconf import OmegaConf

    cfg = train_cfg(f"experiment={name}", fast=False)
    for key, value in EXPECTED[name].items():
        assert OmegaConf.select(cfg, key) == value, key


def test_every_preset_file_is_tested():
    assert {p.stem for p in (ROOT / "experiments").glob("*.yaml")} == set(EXPECTED)


@pytest.mark.slow
def test_default_experiment_end_to_end(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "train.py")], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test metrics per label" in proc.stdout
    metrics = json.loads(next((tmp_path / "outputs" / "train" / "runs").glob("*/metrics.json")).read_text())
    assert metrics["test/auroc_macro"] >= 0.9
