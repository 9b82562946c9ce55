"""`python eval.py ckpt_path=<run dir or .ckpt> [split=test|val|train|all] [dataset=<name> dataset.path=...]`.

The checkpoint carries its backbone/head/loss/labels. With only `ckpt_path`, the training run's own dataset
and data settings (its config.yaml) and its held-out rows (its splits.json) are scored, and one line says
so. Another dataset (`dataset=...`) is read and tokenized with the checkpoint's tokenizer; when it is the
training dataset again, no row of the run's training split can be scored as test/val: that takes an
explicit `split=train|all`. The run's thresholds.json (tuned on its validation split) is applied when
found. Metrics use the training keys with the `test/` prefix whatever split is scored.
"""

from __future__ import annotations

import dataclasses
import logging

import lightning as L
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue

from modlab import config_schema, overrides, precision
from modlab.errors import ModlabError
from modlab.evaluation import thresholds as thr
from modlab.evaluation.gate import enforce as enforce_gate
from modlab.evaluation.result import Predictions, check_config, evaluate
from modlab.evaluation.sections import judgements
from modlab.reporting.run_outputs import render
from modlab.rundir import RunDir, locate
from modlab.tracking.loggers import finish_loggers, instantiate_loggers
from modlab.training import assemble, checkpoints
from modlab.training.resume import check_labels

log = logging.getLogger(__name__)

SPLITS = ("test", "val", "train", "all")
HELD_OUT = ("test", "val")
# What eval takes from the training run unless the command line sets it: its data and how it was judged.
RUN_BLOCKS = ("dataset", "data", "bias", "robust")


def read_in_label_order(reader, labels: list[str]):
    """The dataset's table with its label columns in the checkpoint's order when it has the same label set
    (a JSONL reader infers its taxonomy sorted); any other label set is left for the mismatch check."""
    table = reader()
    names = list(table.label_names)
    if names != list(labels) and sorted(names) == sorted(labels):
        order = [names.index(n) for n in labels]
        table = dataclasses.replace(table, labels=table.labels[:, order], label_names=list(labels))
        log.info("dataset label columns put in the checkpoint's order: %s", ", ".join(labels))
    return table


def scoring_config(cfg: DictConfig, run: RunDir | None, hp: dict, saved: DictConfig | None,
                   splits: dict | None) -> tuple[DictConfig, bool]:
    """The eval config with the checkpoint's model blocks, and the dataset/data of the training run (its
    `saved` config and `splits`) unless the command line names a dataset; also whether it is the run's own."""
    keys = overrides.explicit_keys()
    own_dataset = not overrides.names(keys, "dataset") or (
        saved is not None and OmegaConf.to_container(cfg.dataset, resolve=True) == saved.get("dataset"))
    if cfg.get("dataset") is None and saved is None:
        raise ModlabError(f"ckpt_path={cfg.ckpt_path} is not inside a training run dir, so the data it was trained on "
                          f"is unknown; pass dataset=<name> dataset.path=... (and split=all to score every row)")
    if saved is not None and saved.get("dataset") is not None:
        blocks = RUN_BLOCKS if not overrides.names(keys, "dataset") else tuple(b for b in RUN_BLOCKS if b != "dataset")
        cfg = overrides.overlay(saved, cfg, keys, blocks=blocks)
    else:
        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    with open_dict(cfg):
        for block in ("backbone", "head", "loss"):
            cfg[block] = hp[block]
        if own_dataset and splits is not None and not overrides.names(keys, "data.splits_file"):
            cfg.data.splits_file = str(run.file("splits.json"))  # exactly the run's held-out rows
    return cfg, own_dataset


def check_no_training_rows(ids: list[str], run: RunDir | None, splits: dict | None, split: str,
                           same_source: bool, refit: bool = False) -> None:
    """No held-out score on rows the checkpoint trained on: train, and val too for a refit model."""
    if run is None or split not in HELD_OUT or not same_source:
        return
    trained = ("train", "val") if refit else ("train",)
    leaked = set(ids) & {i for name in trained for i in (splits or {}).get(name, [])}
    if leaked:
        what = "training rows (train + val: the checkpoint is refit.ckpt)" if refit else "training split"
        raise ModlabError(
            f"{len(leaked)} of the {len(ids)} split={split} rows were in the {what} of {run.path} "
            f"(e.g. id {sorted(leaked)[0]!r}); scoring them as held-out would inflate the metrics. Drop the "
            f"dataset overrides to score the run's own held-out rows, or pass split=train|all to score them knowingly")


def run(cfg: DictConfig) -> float | tuple[float, ...] | None:
    from modlab.training.train import optimized_value

    config_schema.check(cfg, task="eval")  # bad types, ranges and metric names fail before the checkpoint is read
    try:
        ckpt_arg = cfg.ckpt_path
    except MissingMandatoryValue:
        ckpt_arg = None
    if not ckpt_arg:
        raise ModlabError("ckpt_path is required: python eval.py ckpt_path=<run dir or .ckpt> [dataset=...]")
    if cfg.split not in SPLITS:
        raise ModlabError(f"split={cfg.split} is not one of {', '.join(SPLITS)}")
    ckpt, run = locate(ckpt_arg)
    hp = checkpoints.hparams(ckpt)
    out = RunDir(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    saved = run.read_config() if run is not None else None
    splits = run.read_splits() if run is not None else None
    cfg, own_dataset = scoring_config(cfg, run, hp, saved, splits)

    reader = instantiate(cfg.dataset.reader, _partial_=True)
    parts = assemble.build(cfg, out.path, reader=lambda: read_in_label_order(reader, hp["labels"]),
                           with_module=False)
    dm = parts.datamodule
    check_labels(ckpt, hp["labels"], dm.label_names)
    check_config(cfg, dm.label_names)
    rows = np.arange(len(dm.table)) if cfg.split == "all" else dm.rows[cfg.split]
    if len(rows) == 0:
        raise ModlabError(f"split={cfg.split} of {dm.table.source} has no rows; use split=all or another split")
    same_source = own_dataset or (saved is not None and (saved.get("dataset") or {}).get("name")
                                  == cfg.dataset.get("name"))
    check_no_training_rows([str(dm.table.ids[i]) for i in rows], run, splits, cfg.split, same_source,
                           refit=run is not None and ckpt == run.refit_checkpoint)
    where = "the training run's own dataset" if own_dataset else "the given dataset"
    log.info("scoring %s (%s), split=%s: %d rows, with %s", dm.table.source, where, cfg.split, len(rows), ckpt)

    payload = thresholds_for(cfg, run, dm.label_names)
    precision.resolve_trainer(cfg)
    with open_dict(cfg):
        cfg.ckpt_path, cfg.labels = str(ckpt), list(hp["labels"])
    out.write_config(cfg)

    model, _ = assemble.load_classifier(ckpt, parts.backbone, hp)
    loggers = instantiate_loggers(cfg.get("logger"), cfg)
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[], enable_checkpointing=False,
                                     default_root_dir=str(out.path))
    trainer.test(model, dataloaders=dm.eval_loader(rows), verbose=False)
    collected = model.collected["test"]
    predictions = Predictions.of_rows(collected["probs"], collected["labels"], collected["rows"], dm.table)
    loss = {k: float(v) for k, v in trainer.callback_metrics.items() if k == "test/loss"}
    result = evaluate(predictions, dm.label_names, "test", thresholds=payload, extra=loss, gate=cfg.get("gate"),
                      showcase=int((cfg.get("report") or {}).get("showcase", 5)),
                      sections=judgements(cfg, model, parts.tokenizer, predictions, "test", payload, robust=True))
    metrics = dict(result.metrics)
    if trainer.is_global_zero:
        render(out, result, metrics, report_cfg=cfg.get("report"), loggers=loggers, logged=trainer.callback_metrics,
               info={"checkpoint": str(ckpt), "dataset": dm.table.source, "rows": cfg.split})
    finish_loggers(loggers)
    enforce_gate(result.gate, cfg.get("gate"))
    return optimized_value(metrics, cfg.get("optimized_metric"))


def thresholds_for(cfg: DictConfig, run: RunDir | None, label_names: list[str]) -> dict | None:
    """`thresholds_path`, else the run's thresholds.json, checked against the labels; None: metrics at 0.5."""
    explicit = cfg.get("thresholds_path")
    if explicit:
        payload = thr.load(explicit, label_names)
    elif run is not None and (found := run.read_thresholds()) is not None:
        payload = thr.parse(found, label_names, run.file("thresholds.json"))
    else:
        log.info("no thresholds.json next to the checkpoint: metrics at 0.5 only")
        return None
    log.info("applying the thresholds in %s", explicit or run.file("thresholds.json"))
    return payload

