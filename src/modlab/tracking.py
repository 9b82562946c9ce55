"""Experiment loggers (config group `logger`)."""

from __future__ import annotations

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    """Each entry of the `logger` group with a `_target_` becomes a Lightning logger."""
    if not cfg:
        return []
    return [instantiate(entry) for entry in cfg.values() if isinstance(entry, DictConfig) and "_target_" in entry]
