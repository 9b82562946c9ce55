"""Resuming a run from its checkpoint: the model from the checkpoint, the rest from the run, in the run's dir.

`python train.py ckpt_path=<run>/checkpoints/last.ckpt [overrides]` continues the original run: backbone,
head, loss and labels come from the checkpoint (an override that contradicts them fails in one line), every
other setting from the run's config.yaml unless given on the command line, and outputs go to the original
run dir, so best-checkpoint tracking and the run's files carry on.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from modlab import overrides
from modlab.errors import ModlabError
from modlab.rundir import locate
from modlab.training import checkpoints

log = logging.getLogger(__name__)

MODEL_BLOCKS = ("backbone", "head", "loss")


def _plain(block) -> dict:
    return OmegaConf.to_container(block, resolve=True) if isinstance(block, DictConfig) else dict(block or {})


def resume_config(cfg: DictConfig) -> DictConfig:
    ckpt, run = locate(cfg.ckpt_path)
    if Path(str(cfg.ckpt_path)).is_dir() and run.last_checkpoint.is_file():
        ckpt = run.last_checkpoint  # a run dir resumes where it stopped, not from its best epoch
    hp = checkpoints.hparams(ckpt)
    keys = overrides.explicit_keys()
    for block in MODEL_BLOCKS:
        if overrides.names(keys, block) and _plain(cfg[block]) != hp[block]:
            raise ModlabError(
                f"ckpt_path={ckpt} was trained with {block} {hp[block]} but the command line asks for "
                f"{_plain(cfg[block])}; drop the {block} override to resume, or train a new run without ckpt_path")
    saved = run.read_config() if run is not None else None
    merged = overrides.overlay(saved if saved is not None else {}, cfg, keys)
    with open_dict(merged):
        for block in MODEL_BLOCKS:
            merged[block] = hp[block]
        merged.ckpt_path = str(ckpt)
        if run is not None:
            merged.paths.output_dir = str(run.path)
    if run is not None:
        log.info("resuming %s from %s: outputs continue in that run dir", run.path, ckpt.name)
    return merged


def check_labels(ckpt, trained: list[str], labels: list[str]) -> None:
    if list(trained or []) != list(labels):
        raise ModlabError(
            f"checkpoint {ckpt} was trained on labels {trained} but the dataset has {labels}; "
            f"use a checkpoint of this taxonomy or a dataset with the same labels")
