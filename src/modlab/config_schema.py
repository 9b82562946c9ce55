"""Validate a composed train/eval config before any data is read: one-line ModlabErrors naming the key, the
bad value and the fix.

Types come from OmegaConf structured configs (dataclass schemas merged onto the user's values, so
`data.batch_size=abc` fails with OmegaConf's own type check); ranges and names are checked in `check`, the
one place that knows them.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass
from typing import Any

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from modlab.errors import ModlabError

log = logging.getLogger(__name__)

METRICS = ("f1", "precision", "recall", "auroc", "auprc")


@dataclass
class DataSchema:
    max_length: int = 128
    batch_size: int = 32
    eval_batch_size: int = 128


@dataclass
class OptimSchema:
    lr: float = 5e-5
    head_lr: float | None = None
    weight_decay: float = 0.0
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    scheduler: str = "linear"


@dataclass
class TrainerSchema:
    max_epochs: int | None = None
    max_steps: int = -1


# block name -> its schema; only the typed keys are checked, the rest of each block is left as it is.
SCHEMAS = {"data": DataSchema, "optim": OptimSchema, "trainer": TrainerSchema}


def _types(cfg: DictConfig) -> None:
    for block, schema in SCHEMAS.items():
        given = cfg.get(block)
        if given is None:
            continue
        fields = schema.__dataclass_fields__
        values = {k: given[k] for k in fields if k in given}
        try:
            OmegaConf.merge(OmegaConf.structured(schema), values)
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", "") or "?"
            raise ModlabError(f"{block}.{key}={values.get(key)!r} has the wrong type: it must be "
                              f"{fields[key].type if key in fields else 'a number'}; "
                              f"fix the override {block}.{key}=...") from None


def _positive(key: str, value: Any, minimum: float, strict: bool) -> None:
    if value is None:
        return
    if value < minimum or (strict and value == minimum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ModlabError(f"{key}={value} is out of range: it must be {bound}")


def _schedulers() -> list[str]:
    from transformers import SchedulerType

    return [s.value for s in SchedulerType]


def _ranges(cfg: DictConfig) -> None:
    data, optim = cfg.get("data") or {}, cfg.get("optim") or {}
    _positive("data.batch_size", data.get("batch_size"), 0, strict=True)
    _positive("data.eval_batch_size", data.get("eval_batch_size"), 0, strict=True)
    _positive("data.max_length", data.get("max_length"), 0, strict=True)
    _positive("optim.lr", optim.get("lr"), 0, strict=True)
    _positive("optim.head_lr", optim.get("head_lr"), 0, strict=True)
    _positive("trainer.max_steps", (cfg.get("trainer") or {}).get("max_steps"), -1, strict=False)
    _positive("optim.weight_decay", optim.get("weight_decay"), 0, strict=False)
    loss = cfg.get("loss") or {}
    if "gamma" in loss:
        _positive("loss.gamma", loss.get("gamma"), 0, strict=False)
    scheduler = optim.get("scheduler")
    if scheduler is not None:
        names = _schedulers()
        if scheduler not in names:
            raise ModlabError(f"optim.scheduler={scheduler!r} is not a transformers scheduler; use one of: "
                              + ", ".join(names))


def monitor_pattern(name: str, labels: list[str] | None, prefix: str = "val") -> bool:
    """Whether `name` is a key a run logs under `prefix`: <prefix>/loss, <prefix>/<metric>[_macro|_micro],
    <prefix>/<metric>/<label> (any label when `labels` is None)."""
    if name == f"{prefix}/loss":
        return True
    m = re.fullmatch(rf"{prefix}/({'|'.join(METRICS)})(_macro|_micro)?", name)
    if m:
        return True
    m = re.fullmatch(rf"{prefix}/({'|'.join(METRICS)})/(.+)", name)
    return bool(m) and (labels is None or m.group(2) in labels)


def _valid_names(labels: list[str] | None, prefix: str = "val") -> list[str]:
    out = [f"{prefix}/loss"] + [f"{prefix}/{m}{s}" for m in METRICS for s in ("", "_macro", "_micro")]
    return out + [f"{prefix}/{m}/{lab}" for m in METRICS for lab in (labels or [])]


def _monitor(cfg: DictConfig, labels: list[str] | None) -> None:
    metric = (cfg.get("monitor") or {}).get("metric")
    if metric is None or monitor_pattern(str(metric), labels):
        return
    near = difflib.get_close_matches(str(metric), _valid_names(labels), n=3)
    hint = f"did you mean {', '.join(near)}?" if near else "e.g. val/auroc_macro, val/f1_micro, val/loss"
    raise ModlabError(f"monitor.metric={metric!r} is never logged by a run (checkpointing and early stopping "
                      f"would find nothing): {hint}")


OPTIMIZED = re.compile(r"(model/(params|latency_ms)|(val|test|train|all)/.+)")


def _optimized(cfg: DictConfig, labels: list[str] | None) -> None:
    names = cfg.get("optimized_metric")
    if names is None:
        return
    for name in [names] if isinstance(names, str) else list(names):
        name = str(name)
        split = name.split("/", 1)[0]
        if not OPTIMIZED.fullmatch(name):
            raise ModlabError(f"optimized_metric={name!r} is no metric a run produces (it would return NaN): "
                              "use val/..., test/..., <split>/bias/..., <split>/robust/..., model/params "
                              "or model/latency_ms, e.g. optimized_metric=val/auroc_macro")
        rest = name.split("/", 1)[1] if "/" in name else ""
        if split in ("val", "test", "train", "all") and not rest.startswith(("bias/", "robust/")) \
                and not monitor_pattern(name, labels, prefix=split) and rest != "loss":
            near = difflib.get_close_matches(name, _valid_names(labels, split), n=3)
            raise ModlabError(f"optimized_metric={name!r} is no metric a run produces (it would return NaN): "
                              f"{'did you mean ' + ', '.join(near) + '?' if near else 'e.g. ' + split + '/auroc_macro'}")


class ValidateAtMaxSteps(Callback):
    """Lightning validates only at epoch ends: a run whose `trainer.max_steps` ends mid-epoch would reach
    early stopping / checkpointing with no val metric (a crash) and write no metrics.json. Asking the
    trainer to stop at the last step makes its epoch loop validate first (as it does for early stopping)."""

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True


def check(cfg: DictConfig) -> None:
    """Types, ranges and metric names of a composed config; labels are not known yet, so any label passes.
    A `trainer.max_steps` run also gets the ValidateAtMaxSteps callback (recorded in its config.yaml)."""
    _types(cfg)
    _ranges(cfg)
    _monitor(cfg, None)
    _optimized(cfg, None)
    if (cfg.get("trainer") or {}).get("max_steps", -1) > 0 and cfg.get("callbacks") is not None:
        with open_dict(cfg):
            cfg.callbacks.validate_at_max_steps = {"_target_": f"{__name__}.ValidateAtMaxSteps"}


def check_names(cfg: DictConfig, labels: list[str]) -> None:
    """The metric names again, once the taxonomy is known: a per-label name must name one of its labels."""
    _monitor(cfg, list(labels))
    _optimized(cfg, list(labels))
