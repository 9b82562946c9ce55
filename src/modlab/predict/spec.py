"""What serving a model needs besides its weights: labels, thresholds, max_length and where it came from.

The PyTorch path reads it from a training run (the checkpoint's hyperparameters, the run's config.yaml,
thresholds.json and metrics.json, all through `RunDir`); `modlab export` writes the same fields into a
bundle's metadata, and the ONNX path reads them back from there (`modlab.export.bundle`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modlab.errors import ModlabError
from modlab.rundir import BEST, CHECKPOINTS, LAST, THRESHOLDS, RunDir, locate

# conf/train.yaml's data.max_length: what a checkpoint found outside its run was most likely trained at.
DEFAULT_MAX_LENGTH = 128
DEFAULT_THRESHOLD = 0.5
# The run's headline figures a bundle carries along (metrics.json keys, per split).
KEY_METRICS = ("auroc_macro", "auprc_macro", "f1_macro", "f1_tuned_macro", "precision_tuned_macro",
               "recall_tuned_macro", "examples")


@dataclass(frozen=True)
class ModelSpec:
    labels: tuple[str, ...]
    thresholds: dict[str, float]
    default_threshold: float
    thresholds_source: str
    max_length: int
    max_length_source: str
    backbone: dict = field(default_factory=dict)  # name, family, package, tiny (the checkpoint's block)
    head: str = ""
    checkpoint: str | None = None
    run_dir: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def threshold_array(self) -> np.ndarray:
        return np.asarray([self.thresholds[n] for n in self.labels], dtype=np.float32)


def key_metrics(run: RunDir | None) -> dict[str, float]:
    if run is None or not run.is_run():
        return {}
    metrics = run.read_metrics()
    return {f"{split}/{name}": metrics[f"{split}/{name}"] for split in ("test", "val") for name in KEY_METRICS
            if f"{split}/{name}" in metrics}


def _thresholds(run: RunDir | None, labels: list[str]) -> tuple[dict[str, float], float, str]:
    payload = run.read_thresholds() if run is not None else None
    if payload is None:
        where = "the checkpoint is outside a run dir" if run is None else f"{run.file(THRESHOLDS)} does not exist"
        return dict.fromkeys(labels, DEFAULT_THRESHOLD), DEFAULT_THRESHOLD, f"default {DEFAULT_THRESHOLD} ({where})"
    # torch and torchmetrics: only the PyTorch path needs them
    from modlab.evaluation import thresholds as thr

    payload = thr.parse(payload, labels, run.file(THRESHOLDS))
    values = thr.as_array(payload, labels)
    default = payload.get("default", DEFAULT_THRESHOLD)
    default = DEFAULT_THRESHOLD if default is None or math.isnan(float(default)) else float(default)
    source = f"{run.file(THRESHOLDS)} (tuned on val, objective {payload.get('objective', 'f1')})"
    return {n: float(v) for n, v in zip(labels, values, strict=True)}, default, source


def _max_length(run: RunDir | None) -> tuple[int, str]:
    cfg = run.read_config() if run is not None else None
    found = None if cfg is None else (cfg.get("data") or {}).get("max_length")
    if found is None:
        return DEFAULT_MAX_LENGTH, f"default {DEFAULT_MAX_LENGTH} (no run config.yaml with data.max_length)"
    return int(found), f"{run.file('config.yaml')} data.max_length"


def locate_checkpoint(path: Path) -> tuple[Path, RunDir | None]:
    """(checkpoint, its run or None) of a run dir or a .ckpt; one line for anything else."""
    if path.is_dir():
        run = RunDir(path)
        if not run.model_checkpoint.is_file():
            hint = f" (it has {CHECKPOINTS}/{LAST}: pass that file)" if run.last_checkpoint.is_file() else ""
            raise ModlabError(f"{path} is neither a bundle (no modlab.json) nor a training run dir (no "
                              f"{CHECKPOINTS}/{BEST}){hint}; pass a bundle from `modlab export`, a run dir or a .ckpt")
    elif not path.exists():
        raise ModlabError(f"{path} does not exist; pass a bundle from `modlab export`, a training run dir or a .ckpt")
    return locate(path, key="path")


def from_checkpoint(ckpt: str | Path, run: RunDir | None, hp: dict) -> ModelSpec:
    """The spec of a checkpoint with hyperparameters `hp`, completed from its run dir when it has one."""
    labels = [str(n) for n in hp["labels"]]
    values, default, source = _thresholds(run, labels)
    max_length, length_source = _max_length(run)
    backbone = {k: hp["backbone"].get(k) for k in ("name", "family", "package", "tiny")}
    head = str((hp.get("head") or {}).get("_target_", "")).rsplit(".", 1)[-1]
    return ModelSpec(labels=tuple(labels), thresholds=values, default_threshold=default, thresholds_source=source,
                     max_length=max_length, max_length_source=length_source, backbone=backbone, head=head,
                     checkpoint=str(ckpt), run_dir=None if run is None else str(run.path), metrics=key_metrics(run))
