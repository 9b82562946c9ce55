"""`python train.py`: compose -> assemble -> fit -> evaluate val/test of the best checkpoint -> render -> metric.

With `refit=true` a fresh model then trains on train + val for the selected checkpoint's number of epochs
(`refit_epochs=N`: N epochs, without the selection fit) and is what the run ships (checkpoints/refit.ckpt):
test scores it at the thresholds the selected checkpoint tuned on val.
"""

from __future__ import annotations

import logging
import math

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, open_dict

from modlab import config_schema, precision
from modlab.errors import ModlabError
from modlab.evaluation import thresholds as thr
from modlab.evaluation.gate import enforce as enforce_gate
from modlab.evaluation.objectives import extra_metrics, metric_names
from modlab.evaluation.result import Predictions, check_config, combined_metrics, evaluate
from modlab.evaluation.sections import judgements
from modlab.reporting.run_outputs import render
from modlab.rundir import RunDir
from modlab.sweep.pruning import OptunaPruning
from modlab.tracking.loggers import finish_loggers, instantiate_loggers
from modlab.training import assemble, checkpoints
from modlab.training.resume import check_labels, resume_config

log = logging.getLogger(__name__)
# Left out of the refit fit: they watch val metrics (which it has none of) or need a logger (it has none).
NOT_IN_REFIT = (ModelCheckpoint, EarlyStopping, LearningRateMonitor, OptunaPruning)


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
    refit, fixed_epochs = bool(cfg.get("refit")), cfg.get("refit_epochs")
    selection = not (refit and fixed_epochs)
    if selection:
        trainer.fit(model, datamodule=dm, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    score = trainer.checkpoint_callback.best_model_score if selection and trainer.checkpoint_callback else None
    best = trainer.checkpoint_callback.best_model_path if selection and trainer.checkpoint_callback else ""

    scored = "test" if cfg.get("test", True) else "val"  # the split the gate and robustness judge
    splits = (["val"] if selection else []) + (["test"] if scored == "test" and not refit else [])
    results, payload = evaluate_best(cfg, trainer, parts, splits, scored)
    extra = {}
    if refit:  # the shipped model: trained on train + val, scored on test at the thresholds val gave
        epochs = int(fixed_epochs or selected_epochs(best))
        refit_trainer = fit_refit(cfg, parts, epochs, run_dir)
        parts = assemble.Assembly(parts.backbone, dm, refit_trainer.lightning_module)
        best = str(run_dir.refit_checkpoint)
        extra = {"refit/epochs": float(epochs), "refit/train_rows": float(len(refit_trainer.datamodule.rows["train"]))}
        if scored == "test":
            results += evaluate_best(cfg, refit_trainer, parts, ["test"], scored, payload)[0]
    metrics = combined_metrics(results, extra_metrics(parts.module, dm, cfg.get("optimized_metric")) | extra)
    if trainer.is_global_zero and results:
        render(run_dir, results[-1], metrics, report_cfg=cfg.get("report"), loggers=loggers,
               logged=trainer.callback_metrics, info={"dataset": dm.table.source, "checkpoint": best or "last weights"},
               best=None if score is None else float(score), step=trainer.global_step)
    finish_loggers(loggers)
    enforce_gate(results[-1].gate if results else None, cfg.get("gate"))
    return optimized_value(metrics, cfg.get("optimized_metric"))


def evaluate_best(cfg: DictConfig, trainer: L.Trainer, parts: assemble.Assembly, splits: list[str], scored: str,
                  payload: dict | None = None) -> tuple[list, dict | None]:
    """Results of the best checkpoint (the trainer's weights without one) on `splits`, and the thresholds
    (tuned on val when it is among them, else `payload`).

    Subgroup bias is judged on each split with identity annotations; the gate and robustness (it scores
    perturbed copies of the texts) on the `scored` split only."""
    model, dm = parts.module, parts.datamodule
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    tcfg, results = cfg.get("thresholds") or {}, []
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
        last = split == scored
        results.append(evaluate(predictions, dm.label_names, split, thresholds=payload, extra=loss,
                                gate=cfg.get("gate") if last else None,
                                showcase=int((cfg.get("report") or {}).get("showcase", 5)),
                                sections=judgements(cfg, model, parts.tokenizer, predictions, split, payload,
                                                    robust=last)))
    return results, payload


def selected_epochs(best: str) -> int:
    """How many epochs the selected checkpoint had trained (what refit trains for)."""
    if not best:
        raise ModlabError("refit=true found no selected checkpoint to take the epoch count from (checkpointing is "
                          "off); set refit_epochs=N or enable callbacks.model_checkpoint")
    return int(checkpoints.read(best).get("epoch", 0)) + 1


def fit_refit(cfg: DictConfig, parts: assemble.Assembly, epochs: int, run_dir: RunDir) -> L.Trainer:
    """A fresh module trained on train + val for `epochs` epochs (no validation, no selection), saved as
    checkpoints/refit.ckpt. Only callbacks that do not watch val metrics come along; loggers stay with the
    selection fit, whose steps they already hold."""
    data = parts.datamodule.refit_view()
    log.info("refit: training a fresh model on train + val (%d rows) for %d epochs", len(data.rows["train"]), epochs)
    L.seed_everything(cfg.seed, workers=True)
    module = assemble.build_module(cfg, parts.backbone, data.label_names)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c and "_target_" in c]
    callbacks = [c for c in callbacks if not isinstance(c, NOT_IN_REFIT)]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False, max_epochs=epochs,
                                     max_steps=-1, limit_val_batches=0, enable_checkpointing=False,
                                     default_root_dir=str(run_dir.path))
    trainer.fit(module, datamodule=data)
    if trainer.is_global_zero:
        trainer.save_checkpoint(run_dir.refit_checkpoint, weights_only=True)
    return trainer


def optimized_value(metrics: dict, names) -> float | tuple[float, ...] | None:
    if names is None:
        return None
    values = tuple(float(metrics.get(n, math.nan)) for n in metric_names(names))
    return values[0] if isinstance(names, str) else values
