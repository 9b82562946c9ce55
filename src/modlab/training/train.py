"""`python train.py`: compose -> assemble -> fit -> evaluate val/test of the best checkpoint -> render -> metric."""

from __future__ import annotations

import logging
import math

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, open_dict

from modlab import config_schema, precision
from modlab.evaluation import thresholds as thr
from modlab.evaluation.gate import enforce as enforce_gate
from modlab.evaluation.objectives import extra_metrics, metric_names
from modlab.evaluation.result import Predictions, check_config, combined_metrics, evaluate
from modlab.evaluation.sections import judgements
from modlab.reporting.run_outputs import render
from modlab.rundir import RunDir
from modlab.tracking.loggers import finish_loggers, instantiate_loggers
from modlab.training import assemble, checkpoints
from modlab.training.resume import check_labels, resume_config

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> float | tuple[float, ...]:
    config_schema.check(cfg)  # bad types, ranges and metric names fail before any data is read
    if cfg.get("ckpt_path"):
        cfg = resume_config(cfg)
    precision.resolve_trainer(cfg)
    run_dir = RunDir(cfg.paths.output_dir)
    run_dir.write_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    parts = assemble.build(cfg, run_dir.path)
    dm, model = parts.datamodule, parts.module
    with open_dict(cfg):
        cfg.labels = list(dm.label_names)  # the taxonomy's order, for compare and export
    run_dir.write_config(cfg)
    if cfg.get("ckpt_path"):
        check_labels(cfg.ckpt_path, checkpoints.hparams(cfg.ckpt_path)["labels"], dm.label_names)
    check_config(cfg, dm.label_names)
    config_schema.check_names(cfg, dm.label_names)

    loggers = instantiate_loggers(cfg.get("logger"), cfg)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c and "_target_" in c]
    callbacks = [c for c in callbacks if loggers or not isinstance(c, LearningRateMonitor)]  # it needs a logger
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                     default_root_dir=str(run_dir.path))
    trainer.fit(model, datamodule=dm, ckpt_path=cfg.get("ckpt_path"), weights_only=True)

    results, metrics = evaluate_best(cfg, trainer, parts)
    if trainer.is_global_zero and results:
        score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        render(run_dir, results[-1], metrics, report_cfg=cfg.get("report"), loggers=loggers,
               logged=trainer.callback_metrics, info={"dataset": dm.table.source, "checkpoint": best or "last weights"},
               best=None if score is None else float(score), step=trainer.global_step)
    finish_loggers(loggers)
    enforce_gate(results[-1].gate if results else None, cfg.get("gate"))
    return optimized_value(metrics, cfg.get("optimized_metric"))


def evaluate_best(cfg: DictConfig, trainer: L.Trainer, parts: assemble.Assembly) -> tuple[list, dict[str, float]]:
    """Val (thresholds tuned there) and test results of the best checkpoint, and metrics.json's content.

    Subgroup bias is judged on each split with identity annotations, robustness on the last one only (it
    scores perturbed copies of its texts)."""
    model, dm = parts.module, parts.datamodule
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    tcfg, results, payload = cfg.get("thresholds") or {}, [], None
    splits = ("val", "test") if cfg.get("test", True) else ("val",)
    for split in splits:
        (trainer.validate if split == "val" else trainer.test)(model, datamodule=dm, ckpt_path=best or None,
                                                               verbose=False, weights_only=True)
        collected = model.collected.get(split) or {}
        if not collected:
            continue
        predictions = Predictions.of_rows(collected["probs"], collected["labels"], collected["rows"], dm.table)
        if split == "val" and tcfg.get("tune", True):
            payload = thr.tune(predictions.probs, predictions.labels, dm.label_names, tcfg.get("objective", "f1"),
                               tcfg.get("target"), tcfg.get("default", 0.5))
            if trainer.is_global_zero:
                RunDir(cfg.paths.output_dir).write_thresholds(payload)
        loss = {k: float(v) for k, v in trainer.callback_metrics.items() if k == f"{split}/loss"}
        last = split == splits[-1]
        results.append(evaluate(predictions, dm.label_names, split, thresholds=payload, extra=loss,
                                gate=cfg.get("gate") if last else None,
                                showcase=int((cfg.get("report") or {}).get("showcase", 5)),
                                sections=judgements(cfg, model, parts.tokenizer, predictions, split, payload,
                                                    robust=last)))
    return results, combined_metrics(results, extra_metrics(model, dm, cfg.get("optimized_metric")))


def optimized_value(metrics: dict, names) -> float | tuple[float, ...] | None:
    if names is None:
        return None
    values = tuple(float(metrics.get(n, math.nan)) for n in metric_names(names))
    return values[0] if isinstance(names, str) else values
