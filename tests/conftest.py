"""Tests compose configs the way `python train.py` does, offline, into a temporary run dir."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
JIGSAW_SAMPLE = SHARED_DATA / "jigsaw2018-sample"
CIVIL_SAMPLE = SHARED_DATA / "civil_comments-sample"

# Small and fast: tiny backbone, a few hundred synthetic rows, one epoch, no progress bar.
FAST = [
    "backbone.tiny=true",
    "dataset.reader.size=300",
    "trainer.max_epochs=1",
    "callbacks.progress_bar=null",
    "data.max_length=32",
]


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """The composed config with hydra's runtime set as in a real run (output_dir = `output_dir`)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg


@pytest.fixture
def train_cfg(tmp_path):
    """train_cfg(*overrides): the train config, FAST unless overridden, writing under tmp_path."""

    made = []

    def make(*overrides: str, fast: bool = True) -> DictConfig:
        made.append(tmp_path / f"run{len(made)}")  # each config gets its own run dir
        return compose_config("train", (FAST if fast else []) + list(overrides), made[-1])

    return make


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    """Keep every test's outputs/ (and `python train.py` subprocesses') inside tmp_path."""
    monkeypatch.setenv("MODLAB_ROOT", str(tmp_path))
