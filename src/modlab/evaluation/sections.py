"""The extra sections of an evaluation result: subgroup bias and robustness to evasion.

Each returns a `Section` (flat metrics under `<split>/bias/...` or `<split>/robust/...`, plus a table) or
None when it does not apply (no identity annotations; robustness switched off). Config blocks `bias` and
`robust` (conf/train.yaml).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import numpy as np

from modlab.errors import ModlabError
from modlab.evaluation import bias, robustness
from modlab.evaluation.result import Predictions, Section

log = logging.getLogger(__name__)

MAIN_LABELS = ("toxicity", "toxic")  # the label the bias metric scores by default, first found


def bias_label(cfg, label_names: list[str]) -> str:
    name = (cfg or {}).get("label")
    if name is None:
        return next((n for n in MAIN_LABELS if n in label_names), label_names[0])
    if name not in label_names:
        raise ModlabError(f"bias.label={name!r} is not a label of this dataset ({', '.join(label_names)}); "
                          f"pick one of them or bias.label=null")
    return name


def bias_section(predictions: Predictions, label_names: list[str], split: str, cfg) -> Section | None:
    cfg = cfg or {}
    if not cfg.get("enabled", True):
        return None
    identities = bias.identity_columns(predictions.meta, cfg.get("identities"))
    if not identities:
        return None
    label = bias_label(cfg, label_names)
    j = label_names.index(label)
    values = bias.bias_metrics(predictions.probs[:, j], predictions.labels[:, j], identities,
                               min_subgroup=int(cfg.get("min_subgroup", 100)), power=float(cfg.get("power", -5.0)))
    rows = tuple((g, int(values[f"size/{g}"]), *(values.get(f"{m}/{g}", math.nan) for m in bias.AUCS))
                 for g in identities)
    summary = ("power mean", "", *(values[f"power_mean/{m}"] for m in bias.AUCS))
    note = (f"Scored label `{label}`; final bias score {values['final']:.4f} (overall ROC-AUC "
            f"{values['overall_auc']:.4f}). Identities with fewer than {cfg.get('min_subgroup', 100)} rows get no AUCs.")
    return Section(title="Subgroup bias", metrics={f"{split}/bias/{k}": float(v) for k, v in values.items()},
                   header=("identity", "rows", "subgroup AUC", "BPSN AUC", "BNSP AUC"), rows=(*rows, summary),
                   note=note)


def robustness_section(predict_proba: Callable[[list[str]], np.ndarray], predictions: Predictions,
                       operating: np.ndarray, split: str, cfg) -> Section | None:
    cfg = cfg or {}
    if not cfg.get("enabled", True) or len(predictions) == 0:
        return None
    values = robustness.robustness_metrics(
        predict_proba, list(predictions.texts), predictions.labels, operating, clean_probs=predictions.probs,
        kinds=tuple(cfg.get("kinds") or robustness.KINDS), rate=float(cfg.get("rate", 1.0)),
        max_rows=int(cfg.get("max_rows", 100)), seed=int(cfg.get("seed", 0)))
    kinds = [k for k in (cfg.get("kinds") or robustness.KINDS)]
    rows = tuple((k, values[f"{k}/auroc_macro"], values[f"{k}/f1_tuned_macro"], values[f"{k}/evasion_rate"],
                  values[f"{k}/false_flag_rate"], values[f"{k}/mean_abs_delta"]) for k in kinds)
    clean = ("clean", values["clean/auroc_macro"], values["clean/f1_tuned_macro"], "", "", "")
    note = (f"{int(values['rows'])} rows of the split, each perturbation applied to every word; hard-negative probe: "
            f"{values['hard_negatives/fpr']:.3f} of {int(values['hard_negatives/count'])} benign texts flagged.")
    return Section(title="Robustness to evasion", metrics={f"{split}/robust/{k}": float(v) for k, v in values.items()},
                   header=("perturbation", "ROC-AUC", "F1@thr", "evasion rate", "false-flag rate", "mean |delta p|"),
                   rows=(clean, *rows), note=note,
                   bars={"clean": values["clean/auroc_macro"], **{k: values[f"{k}/auroc_macro"] for k in kinds}},
                   bars_label="macro ROC-AUC")


def judgements(cfg, module, tokenizer, predictions: Predictions, split: str, thresholds: dict | None,
               robust: bool) -> dict[str, Section]:
    """The sections of one split's result that apply: bias always, robustness when `robust` (it scores
    perturbed copies of the split's texts with `module`)."""
    from modlab.evaluation import thresholds as thr
    from modlab.models.inference import predict_proba

    names = list(module.labels)
    started = time.perf_counter()
    found = {"bias": bias_section(predictions, names, split, cfg.get("bias"))}
    if robust:
        operating = thr.as_array(thresholds, names) if thresholds is not None else np.full(len(names), 0.5)
        found["robust"] = robustness_section(
            lambda texts: predict_proba(module, tokenizer, texts, cfg.data.max_length, cfg.data.eval_batch_size),
            predictions, operating, split, cfg.get("robust"))
    found = {k: v for k, v in found.items() if v is not None}
    if found:
        log.info("%s: judged %s in %.2fs", split, " and ".join(found), time.perf_counter() - started)
    return found
