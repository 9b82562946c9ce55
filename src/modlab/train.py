"""Compose -> instantiate -> fit -> validate/test the best checkpoint -> metrics.json -> optimized metric."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from modlab import scoring
from modlab.data.datamodule import ModerationDataModule
from modlab.errors import ModlabError
from modlab.gate import enforce as enforce_gate
from modlab.io import atomic_write_text
from modlab.models import backbones
from modlab.models.module import ModerationClassifier
from modlab.sweep.objectives import extra_metrics, metric_names
from modlab.tracking import finish_loggers, instantiate_loggers

log = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig, output_dir: str | None) -> ModerationDataModule:
    """Resolve the backbone's tokenizer, check max_length against it, and read + split + tokenize the data."""
    path = backbones.resolve_config(cfg.backbone)
    positions = backbones.max_positions(path)
    if cfg.data.max_length > positions:
        raise ModlabError(
            f"data.max_length={cfg.data.max_length} exceeds {cfg.backbone.name}'s {positions} positions; "
            f"set data.max_length<={positions}"
        )
    dm = ModerationDataModule(
        reader=instantiate(cfg.dataset.reader, _partial_=True), tokenizer=backbones.load_tokenizer(path),
        max_length=cfg.data.max_length, batch_size=cfg.data.batch_size, eval_batch_size=cfg.data.eval_batch_size,
        num_workers=cfg.data.num_workers, val_size=cfg.data.val_size, test_size=cfg.data.test_size,
        seed=cfg.data.split_seed, length_grouping=cfg.data.length_grouping, cache_dir=cfg.data.cache_dir,
        output_dir=output_dir, splits_file=cfg.data.get("splits_file"),
        pad_to_multiple_of=cfg.data.get("pad_to_multiple_of"),
    )
    dm.setup()
    return dm


def checkpoint_hparams(ckpt_path) -> dict:
    """A checkpoint's hyperparameters; memory-mapped, so the weights and optimizer state are not read."""
    return torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True).get("hyper_parameters") or {}


def check_checkpoint_labels(ckpt_path, trained: list[str] | None, labels: list[str]) -> None:
    if list(trained or []) != list(labels):
        raise ModlabError(
            f"checkpoint {ckpt_path} was trained on labels {trained} but the dataset has {labels}; "
            f"use a checkpoint of this taxonomy or a dataset with the same labels"
        )


def run(cfg: DictConfig) -> float | tuple[float, ...]:
    output_dir = Path(cfg.paths.output_dir)
    atomic_write_text(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    L.seed_everything(cfg.seed, workers=True)
    dm = build_datamodule(cfg, str(output_dir))
    if cfg.get("ckpt_path"):
        if not Path(cfg.ckpt_path).is_file():
            raise ModlabError(f"ckpt_path={cfg.ckpt_path} does not exist; pass a .ckpt file from a run's checkpoints/")
        check_checkpoint_labels(cfg.ckpt_path, checkpoint_hparams(cfg.ckpt_path).get("labels"), dm.label_names)

    scoring.check_config(cfg, dm.label_names)

    model = ModerationClassifier(cfg.backbone, cfg.head, cfg.loss, cfg.optim, dm.label_names)
    model.criterion.fit(dm.train_labels, dm.label_names)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c and "_target_" in c]
    loggers = instantiate_loggers(cfg.get("logger"), cfg)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                     default_root_dir=str(output_dir))
    trainer.fit(model, datamodule=dm, ckpt_path=cfg.get("ckpt_path"))

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    test = cfg.get("test", True)
    metrics: dict[str, float] = {}
    for split, evaluate in (("val", trainer.validate), ("test", trainer.test)):
        if split == "test" and not test:
            continue
        evaluate(model, datamodule=dm, ckpt_path=best or None, verbose=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(f"{split}/")})
    metrics.update(extra_metrics(model, dm, cfg.get("optimized_metric")))
    gate = None
    if trainer.is_global_zero:
        # Thresholds tuned on val -> tuned metrics, gate, run-dir outputs, W&B table/curves/summary, printed table.
        split = "test" if test else "val"
        score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
        metrics, gate = scoring.finish(
            cfg, output_dir=output_dir, label_names=dm.label_names, metrics=metrics,
            predictions=scoring.gather(model, ("val", split)), table=dm.table, loggers=loggers, report_split=split,
            best=None if score is None else float(score), step=trainer.global_step,
            info={"dataset": dm.table.source, "checkpoint": best or "last weights"})
    finish_loggers(loggers)
    enforce_gate(gate, cfg.get("gate"))
    return optimized_value(metrics, cfg.get("optimized_metric"))


def optimized_value(metrics: dict, names) -> float | tuple[float, ...] | None:
    if names is None:
        return None
    values = tuple(float(metrics.get(n, math.nan)) for n in metric_names(names))
    return values[0] if isinstance(names, str) else values
