"""Score a checkpoint on any dataset with the same labels: metrics.json, predictions.csv, report.md.

`python eval.py ckpt_path=<.ckpt or run dir> [dataset=<name> dataset.path=...] [split=test|val|train|all]`

The checkpoint carries its backbone/head/loss/labels; the dataset is read and tokenized with the
checkpoint's tokenizer. Data settings left null (max_length, split sizes and seed) come from the training
run's config.yaml when the checkpoint sits in a run dir, so `split=test` on the training dataset scores
the same held-out rows. The run's thresholds.json (tuned on its validation split) is applied when found.
Metrics use the training keys with the `test/` prefix whatever `split` is scored.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import lightning as L
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue
from torch.utils.data import DataLoader

from modlab import scoring
from modlab import thresholds as thr
from modlab.errors import ModlabError
from modlab.gate import enforce as enforce_gate
from modlab.io import atomic_write_text
from modlab.tracking import finish_loggers, instantiate_loggers

log = logging.getLogger(__name__)

SPLITS = ("test", "val", "train", "all")
DATA_DEFAULTS = {"max_length": 128, "val_size": 0.1, "test_size": 0.1, "split_seed": 42}


def resolve_checkpoint(path) -> tuple[Path, Path | None]:
    """(checkpoint file, training run dir or None) from a .ckpt path or a run dir."""
    p = Path(str(path)).expanduser()
    if p.is_dir():
        ckpt = p / "checkpoints" / "best.ckpt"
        if not ckpt.is_file():
            raise ModlabError(f"ckpt_path={path} is a directory without checkpoints/best.ckpt; "
                              f"pass a training run dir or a .ckpt file")
        return ckpt, p
    if not p.is_file():
        raise ModlabError(f"ckpt_path={path} does not exist; pass a .ckpt file or a training run dir")
    run_dir = p.parent.parent if p.parent.name == "checkpoints" else None
    return p, run_dir


def _training_config(run_dir: Path | None) -> DictConfig | None:
    path = None if run_dir is None else run_dir / "config.yaml"
    return OmegaConf.load(path) if path is not None and path.is_file() else None


def data_settings(cfg: DictConfig, train_cfg: DictConfig | None) -> DictConfig:
    """The training run's data settings (split sizes, seed, splits file, ...), overridden by the non-null
    entries of cfg.data; what is still unset gets the defaults."""
    inherited = OmegaConf.select(train_cfg, "data") if train_cfg is not None else None
    data = OmegaConf.to_container(inherited, resolve=True) if isinstance(inherited, DictConfig) else {}
    data.update({k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if v is not None})
    for key, default in DATA_DEFAULTS.items():
        if data.get(key) is None:
            data[key] = default
    return OmegaConf.create(data)


def read_in_label_order(reader: DictConfig, labels: list[str]):
    """The dataset's table with its label columns in the checkpoint's order when it has the same label set
    (a JSONL reader infers its taxonomy sorted); any other label set is left for the mismatch check."""
    table = instantiate(reader)
    names = list(table.label_names)
    if names != list(labels) and sorted(names) == sorted(labels):
        order = [names.index(n) for n in labels]
        table = dataclasses.replace(table, labels=table.labels[:, order], label_names=list(labels))
        log.info("dataset label columns put in the checkpoint's order: %s", ", ".join(labels))
    return table


def _loader(dm, split: str) -> DataLoader:
    rows = np.arange(len(dm.table)) if split == "all" else dm.rows[split]
    if len(rows) == 0:
        raise ModlabError(f"split={split} of {dm.table.source} has no rows; use split=all or another split")
    return dm.eval_loader(rows)


def run(cfg: DictConfig) -> float | tuple[float, ...] | None:
    from modlab.models.module import ModerationClassifier
    from modlab.train import build_datamodule, check_checkpoint_labels, checkpoint_hparams, optimized_value

    try:
        ckpt_arg = cfg.ckpt_path
    except MissingMandatoryValue:
        ckpt_arg = None
    if not ckpt_arg:
        raise ModlabError("ckpt_path is required: python eval.py ckpt_path=<run dir or .ckpt> [dataset=...]")
    if cfg.split not in SPLITS:
        raise ModlabError(f"split={cfg.split} is not one of {', '.join(SPLITS)}")
    ckpt, run_dir = resolve_checkpoint(ckpt_arg)
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)

    hparams = checkpoint_hparams(ckpt)
    if "backbone" not in hparams or "labels" not in hparams:
        raise ModlabError(f"{ckpt} is not a modlab checkpoint (no backbone/labels hyperparameters)")
    train_cfg = _training_config(run_dir)
    data = data_settings(cfg, train_cfg)
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    dataset["reader"] = {"_target_": f"{__name__}.read_in_label_order", "_recursive_": False,
                         "reader": dataset["reader"], "labels": list(hparams["labels"])}
    dm = build_datamodule(OmegaConf.create({"backbone": hparams["backbone"], "dataset": dataset, "data": data}),
                          str(output_dir))
    check_checkpoint_labels(ckpt, hparams["labels"], dm.label_names)
    scoring.check_config(cfg, dm.label_names)
    explicit = cfg.get("thresholds_path")
    thresholds_path = explicit or (run_dir / thr.FILENAME if run_dir is not None else None)
    payload = None
    if explicit or (thresholds_path is not None and thresholds_path.is_file()):
        payload = thr.load(thresholds_path, dm.label_names)
        log.info("applying the thresholds in %s", thresholds_path)
    else:
        log.info("no thresholds.json next to the checkpoint: metrics at 0.5 only")

    saved = OmegaConf.merge(OmegaConf.to_container(cfg, resolve=True),
                            {k: hparams[k] for k in ("backbone", "head", "loss") if k in hparams},
                            {"ckpt_path": str(ckpt), "data": data, "labels": list(hparams["labels"])})
    atomic_write_text(output_dir / "config.yaml", OmegaConf.to_yaml(saved, resolve=True))

    model = ModerationClassifier.load_from_checkpoint(str(ckpt), map_location="cpu")
    loader = _loader(dm, cfg.split)
    loggers = instantiate_loggers(cfg.get("logger"), saved)
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[], enable_checkpointing=False,
                                     default_root_dir=str(output_dir))
    trainer.test(model, dataloaders=loader, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}

    gate = None
    if trainer.is_global_zero:
        metrics, gate = scoring.finish(
            cfg, output_dir=output_dir, label_names=dm.label_names, metrics=metrics,
            predictions=scoring.gather(model, ("test",)), table=dm.table, loggers=loggers, report_split="test",
            thresholds=payload, info={"checkpoint": str(ckpt), "dataset": dm.table.source, "rows": cfg.split})
    finish_loggers(loggers)
    enforce_gate(gate, cfg.get("gate"))
    return optimized_value(metrics, cfg.get("optimized_metric"))
