"""Validate a composed train/eval config before any data is read: one-line ModlabErrors naming the key, the
bad value, what the key takes and an example.

Types come from OmegaConf structured configs: one dataclass per block modlab owns (data, optim, thresholds,
gate, report, monitor, the typed trainer and loss knobs, and the top-level seed/test/ckpt_path). Each value
the user's config holds is assigned to the block's structured config, so OmegaConf's own type check and
conversion decide (`data.batch_size=abc` fails, `'32'` becomes 32); ranges and choices sit next to the type
in the field's metadata. The schemas are open: a key they do not type is left as it is, since the blocks
grow with features and Hydra's struct mode already rejects unknown keys at compose time.

Why not Hydra's ConfigStore: Hydra would reject `data.batch_size=abc` while composing, before modlab's
`one_line_errors` wrapper runs, printing several lines and exiting 1; the contract is one `error:` line and
exit 2. So `check()` runs as the first line of `run()` (train and eval).

Metric names are checked here as well: `monitor.metric` against what a run logs while fitting (a typo would
only fail after a whole epoch), `optimized_metric` against what metrics.json holds (a typo returns NaN).
"""

from __future__ import annotations

import difflib
import logging
import re
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from lightning.pytorch.callbacks import Callback
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from modlab.errors import ModlabError

log = logging.getLogger(__name__)

METRICS = ("f1", "precision", "recall", "auroc", "auprc")  # at 0.5, logged every validation epoch
TUNED = ("f1_tuned", "precision_tuned", "recall_tuned")    # at the tuned thresholds: metrics.json only
OBJECTIVES = ("f1", "precision", "recall")                  # modlab.evaluation.thresholds.OBJECTIVES


def _schedulers() -> list[str]:
    from transformers import SchedulerType

    return [s.value for s in SchedulerType]


def spec(eg: Any, *, low: float | None = None, high: float | None = None, above: float | None = None,
         below: float | None = None, choices=None) -> Any:
    """A schema field: no default (the YAML holds those), an example for the message, a range or choices
    (a tuple, or a function returning one)."""
    return field(default=MISSING, metadata=dict(eg=eg, low=low, high=high, above=above, below=below,
                                                choices=choices))


@dataclass
class RunSchema:  # top-level keys
    seed: int = spec(42)
    test: bool = spec("true")
    ckpt_path: str | None = spec("outputs/train/runs/<run>/checkpoints/last.ckpt")
    refit: bool = spec("true")
    refit_epochs: int | None = spec(3, low=1)


@dataclass
class DataSchema:
    # BERT/RoBERTa-style tokenizers add 2 special tokens; below 3 the tokenizer silently skips truncation, so
    # a long text keeps all its tokens and overflows the model's positions
    max_length: int = spec(128, low=3)
    batch_size: int = spec(32, low=1)
    eval_batch_size: int = spec(128, low=1)
    num_workers: int = spec(0, low=0)
    val_size: float = spec(0.1, low=0, below=1)
    test_size: float = spec(0.1, low=0, below=1)
    split_seed: int = spec(42)
    splits_file: str | None = spec("outputs/train/runs/<run>/splits.json")
    folds: int | None = spec(5, low=2)
    fold: int = spec(0, low=0)
    length_grouping: bool = spec("true")
    pad_to_multiple_of: int | None = spec(8, low=1)
    cache_dir: str | None = spec("~/.cache/modlab/tokens")


@dataclass
class OptimSchema:
    lr: float = spec(5e-5, above=0)
    head_lr: float | None = spec(1e-3, above=0)
    weight_decay: float = spec(0.01, low=0)
    warmup_steps: int = spec(0, low=0)
    warmup_ratio: float = spec(0.1, low=0, high=1)
    scheduler: str = spec("linear", choices=_schedulers)
    log_grad_norm: bool = spec("false")
    layer_decay: float | None = spec(0.9, above=0, high=1)


@dataclass
class ThresholdsSchema:
    tune: bool = spec("true")
    objective: str = spec("f1", choices=OBJECTIVES)
    target: float | None = spec(0.9, above=0, high=1)
    default: float = spec(0.5, low=0, high=1)


@dataclass
class GateSchema:  # min_f1 / at_least / at_most take numbers or maps: modlab.evaluation.gate checks them
    tuned: bool = spec("true")
    fail: bool = spec("false")


@dataclass
class ReportSchema:
    enabled: bool = spec("true")
    predictions: bool = spec("true")
    showcase: int = spec(5, low=0)


@dataclass
class MonitorSchema:
    metric: str = spec("val/auroc_macro")
    mode: str = spec("max", choices=("min", "max"))


@dataclass
class TrainerSchema:  # the Lightning knobs modlab's configs set; others go to Lightning as they are
    max_epochs: int | None = spec(3, low=-1)
    min_epochs: int | None = spec(1, low=0)
    max_steps: int = spec(40, low=-1)
    accumulate_grad_batches: int = spec(1, low=1)
    gradient_clip_val: float | None = spec(1.0, low=0)
    log_every_n_steps: int = spec(10, low=1)
    num_sanity_val_steps: int = spec(0, low=-1)


@dataclass
class BackboneSchema:  # the keys modlab adds to conf/backbone/*.yaml (the upper bound is the model's depth)
    reinit_layers: int = spec(2, low=0)
    freeze_layers: int = spec(3, low=0)


@dataclass
class HeadSchema:  # the keys of conf/head/*.yaml
    dropout: float = spec(0.1, low=0, below=1)
    samples: int = spec(5, low=1)


@dataclass
class LossSchema:  # the keys of conf/loss/*.yaml; each loss has some of them
    gamma: float = spec(2.0, low=0)
    alpha: float | None = spec(0.25, low=0, high=1)
    transform: str = spec("none", choices=("none", "sqrt"))
    max_weight: float | None = spec(10.0, above=0)


# block (None: the top level) -> its schema
SCHEMAS: dict[str | None, type] = {
    None: RunSchema, "data": DataSchema, "optim": OptimSchema, "thresholds": ThresholdsSchema,
    "gate": GateSchema, "report": ReportSchema, "monitor": MonitorSchema, "trainer": TrainerSchema,
    "loss": LossSchema, "backbone": BackboneSchema, "head": HeadSchema,
}
WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _expected(hint, meta: dict) -> str:
    """'an integer >= 1', 'a number in (0, 1]', 'one of min, max', with ' or null' when optional."""
    args = typing.get_args(hint)
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    text = WORDS.get(base, getattr(base, "__name__", str(base)))
    low = (meta["low"], "[") if meta["low"] is not None else (meta["above"], "(")
    high = (meta["high"], "]") if meta["high"] is not None else (meta["below"], ")")
    if low[0] is not None and high[0] is not None:
        text += f" in {low[1]}{low[0]:g}, {high[0]:g}{high[1]}"
    elif low[0] is not None:
        text += f" {'>=' if low[1] == '[' else '>'} {low[0]:g}"
    elif high[0] is not None:
        text += f" {'<=' if high[1] == ']' else '<'} {high[0]:g}"
    return text + (" or null" if type(None) in args else "")


def _in_range(value, meta: dict) -> bool:
    if value is None or isinstance(value, (str, bool)):
        return True
    return not ((meta["low"] is not None and value < meta["low"])
                or (meta["above"] is not None and value <= meta["above"])
                or (meta["high"] is not None and value > meta["high"])
                or (meta["below"] is not None and value >= meta["below"]))


def _check_block(cfg: DictConfig, block: str | None, schema: type) -> None:
    node = cfg if block is None else cfg.get(block)
    if not isinstance(node, DictConfig):
        return
    typed, hints = OmegaConf.structured(schema), typing.get_type_hints(schema)
    for f in fields(schema):
        if f.name not in node or OmegaConf.is_missing(node, f.name):
            continue  # absent from this config (e.g. gamma outside focal), or mandatory and checked by run()
        key, value, meta = f"{block}.{f.name}" if block else f.name, node[f.name], f.metadata
        expected = _expected(hints[f.name], meta)
        try:
            typed[f.name] = value
        except OmegaConfBaseException:
            raise ModlabError(f"{key}={value!r} has the wrong type: {key} takes {expected}; "
                              f"e.g. {key}={meta['eg']}") from None
        converted = typed[f.name]
        choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
        if choices is not None and converted is not None and converted not in choices:
            near = difflib.get_close_matches(str(converted), choices, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise ModlabError(f"{key}={converted!r} is not one of its choices: {hint}use one of {', '.join(choices)}")
        if not _in_range(converted, meta):
            raise ModlabError(f"{key}={converted!r} is out of range: {key} takes {expected}; e.g. {key}={meta['eg']}")
        if type(converted) is not type(value):
            node[f.name] = converted  # '32' -> 32, 'no' -> False: what the code reads is what was checked


# --- metric names ------------------------------------------------------------------------------------------

def _label_part(name: str, labels: list[str] | None) -> bool:
    return bool(name) and (labels is None or name in labels)


def logged_while_fitting(name: str, labels: list[str] | None) -> bool:
    """Whether the module logs `name` during fit (what checkpointing and early stopping can watch):
    val/loss, train/loss, val/examples, val/<metric>_macro|_micro, val/<metric>/<label>, val/positives/<label>
    (any label when `labels` is None)."""
    if name in ("val/loss", "train/loss", "val/examples"):
        return True
    if re.fullmatch(rf"val/({'|'.join(METRICS)})_(macro|micro)", name):
        return True
    m = re.fullmatch(rf"val/({'|'.join(METRICS)}|positives)/(.+)", name)
    return bool(m) and _label_part(m.group(2), labels)


def in_metrics_json(name: str, labels: list[str] | None, split: str, tuned: bool) -> bool:
    """Whether `<split>/...` is a per-split key of metrics.json (modlab.evaluation.metrics, thresholds)."""
    aggregate = METRICS + (TUNED if tuned else ())
    if name in (f"{split}/loss", f"{split}/examples"):
        return True
    if re.fullmatch(rf"{split}/({'|'.join(aggregate)})_(macro|micro)", name):
        return True
    m = re.fullmatch(rf"{split}/({'|'.join(aggregate)}|positives)/(.+)", name)
    if m:
        return _label_part(m.group(2), labels)
    m = re.fullmatch(r"val/threshold/(.+)", name)  # the tuned thresholds are val/ whatever split is scored
    return bool(m) and tuned and _label_part(m.group(1), labels)


def _names(split: str, labels: list[str] | None, tuned: bool) -> list[str]:
    aggregate = METRICS + (TUNED if tuned else ())
    out = [f"{split}/loss"] + [f"{split}/{m}_{s}" for m in aggregate for s in ("macro", "micro")]
    return out + [f"{split}/{m}/{label}" for m in aggregate for label in (labels or [])]


def _did_you_mean(name: str, candidates: list[str], example: str) -> str:
    near = difflib.get_close_matches(name, candidates, n=3)
    return f"did you mean {', '.join(near)}?" if near else f"e.g. {example}"


def _monitor(cfg: DictConfig, labels: list[str] | None) -> None:
    monitor = cfg.get("monitor") or {}
    metric = monitor.get("metric")
    if labels is None and str(metric).endswith("loss") and monitor.get("mode") == "max":
        log.warning("monitor.metric=%s with monitor.mode=max keeps the checkpoint with the HIGHEST loss; "
                    "set monitor.mode=min", metric)
    if metric is None or logged_while_fitting(str(metric), labels):
        return
    hint = _did_you_mean(str(metric), _names("val", labels, tuned=False), "val/auroc_macro, val/f1_micro, val/loss")
    raise ModlabError(f"monitor.metric={metric!r} is never logged while training, so checkpointing and early "
                      f"stopping would fail after the first epoch: {hint}")


def _optimized(cfg: DictConfig, labels: list[str] | None, task: str) -> None:
    """Each optimized_metric must be a key metrics.json will hold: train writes val/ (and test/ with
    test=true) plus model/; eval writes test/ only, whatever split it scores."""
    names = cfg.get("optimized_metric")
    if names is None:
        return
    splits = ("test",) if task == "eval" else (("val", "test") if cfg.get("test", True) else ("val",))
    if task != "eval" and cfg.get("refit") and cfg.get("refit_epochs"):
        splits = tuple(s for s in splits if s != "val") or ("test",)  # no selection fit: nothing scores val
    # train tunes thresholds with thresholds.tune; eval applies a run's thresholds.json, if it has one
    tuned = task == "eval" or bool((cfg.get("thresholds") or {}).get("tune", True))
    sections = {s: bool((cfg.get(s) or {}).get("enabled", True)) for s in ("bias", "robust")}
    for name in [names] if isinstance(names, str) else list(names):
        name, split = str(name), str(name).split("/", 1)[0]
        problem = None
        if name in ("model/params", "model/latency_ms"):
            problem = "eval.py writes no model/ metrics" if task == "eval" else None
        elif split in ("val", "test") and split not in splits and not name.startswith("val/threshold/"):
            problem = ("eval.py writes test/ keys whatever split it scores" if task == "eval"
                       else "test=false scores no test split; set test=true or use val/...")
        elif split in splits and name.split("/")[1:2] in (["bias"], ["robust"]):
            section = name.split("/")[1]
            if not sections[section]:
                problem = f"{section}.enabled=false writes no {split}/{section}/ keys; set {section}.enabled=true"
        elif split in splits or name.startswith("val/threshold/"):
            if not in_metrics_json(name, labels, split, tuned):
                candidates = [n for s in splits for n in _names(s, labels, tuned)]
                problem = _did_you_mean(name, candidates, f"{splits[0]}/auroc_macro")
        else:
            problem = (f"metric keys start with {'/'.join(splits)}/"
                       + ("" if task == "eval" else " or model/ (params, latency_ms)")
                       + f", e.g. optimized_metric={splits[0]}/auroc_macro")
        if problem:
            raise ModlabError(f"optimized_metric={name!r} is no metric this run writes (it would return NaN): {problem}")


class ValidateAtMaxSteps(Callback):
    """Lightning validates only at epoch ends: a run whose `trainer.max_steps` ends mid-epoch would reach
    early stopping / checkpointing with no val metric (a crash) and write no metrics.json. Asking the
    trainer to stop at the last step makes its epoch loop validate first (as it does for early stopping)."""

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True


def _refit(cfg: DictConfig) -> None:
    epochs = cfg.get("refit_epochs")
    if epochs and not cfg.get("refit"):
        raise ModlabError(f"refit_epochs={epochs} trains on train + val only with refit=true; add refit=true or "
                          f"drop refit_epochs")
    if cfg.get("refit") and epochs and not cfg.get("test", True):
        raise ModlabError(f"refit=true refit_epochs={epochs} test=false would score nothing (there is no selection "
                          f"fit to score val); set test=true")


def check(cfg: DictConfig, task: str = "train") -> None:
    """Types, ranges and metric names of a composed config (`task`: train or eval); labels are not known
    yet, so any label name passes until `check_names`. A `trainer.max_steps` run also gets the
    ValidateAtMaxSteps callback (recorded in its config.yaml)."""
    for block, schema in SCHEMAS.items():
        _check_block(cfg, block, schema)
    if task == "train":
        _refit(cfg)
    _monitor(cfg, None)
    _optimized(cfg, None, task)
    if (cfg.get("trainer") or {}).get("max_steps", -1) > 0 and cfg.get("callbacks") is not None:
        with open_dict(cfg):
            cfg.callbacks.validate_at_max_steps = {"_target_": f"{__name__}.ValidateAtMaxSteps"}


def check_names(cfg: DictConfig, labels: list[str], task: str = "train") -> None:
    """The metric names again, once the taxonomy is known: a per-label name must name one of its labels."""
    _monitor(cfg, list(labels))
    _optimized(cfg, list(labels), task)
