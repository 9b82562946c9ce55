"""Unintended-bias metrics of the Jigsaw Unintended Bias in Toxicity Classification challenge (2019).

For one score per row, a 0/1 (or fractional) label and identity annotations (fractions, NaN where not
annotated; both binarized at >= 0.5), each identity g with at least `min_subgroup` rows mentioning it gets:

  subgroup AUC   ROC-AUC on the rows mentioning g
  BPSN AUC       on background positives + subgroup negatives (low: benign mentions of g score as toxic)
  BNSP AUC       on background negatives + subgroup positives (low: toxic mentions of g score as benign)

Each of the three is summarized over identities by the generalized power mean M_p(m) = mean(m_g^p)^(1/p),
p = -5 (dominated by the worst identity), and

  final = 0.25 * overall AUC + 0.25 * (M_p(subgroup AUC) + M_p(BPSN AUC) + M_p(BNSP AUC)).

An AUC of a row set with a single class is NaN and left out of its power mean (one log note lists them).
`bias_metrics` returns flat keys without a split prefix (see its docstring); `identity_columns` pulls the
identity annotations out of a `LabeledTable.meta`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import pmean
from sklearn.metrics import roc_auc_score

from modlab.errors import ModlabError
from modlab.evaluation.metrics import IGNORE

log = logging.getLogger(__name__)

# The identities the 2019 challenge scored (each had over 500 rows in its test set).
STANDARD_IDENTITIES = (
    "male",
    "female",
    "homosexual_gay_or_lesbian",
    "christian",
    "jewish",
    "muslim",
    "black",
    "white",
    "psychiatric_or_mental_illness",
)
AUCS = ("subgroup_auc", "bpsn_auc", "bnsp_auc")
THRESHOLD = 0.5


def _auc(scores: np.ndarray, positive: np.ndarray, rows: np.ndarray) -> float:
    """ROC-AUC of `scores[rows]`; NaN when those rows hold a single class."""
    y = positive[rows]
    if y.all() or not y.any():
        return math.nan
    return float(roc_auc_score(y, scores[rows]))


def power_mean(values: Sequence[float], power: float = -5.0) -> float:
    """M_p over the defined (non-NaN) values; NaN when none is defined."""
    values = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    return float(pmean(values, power)) if len(values) else math.nan


def _vector(values, n: int, field: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) != n:
        raise ModlabError(f"{field} has {len(values)} values for {n} scores; pass one value per row")
    return values


def bias_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    identities: Mapping[str, np.ndarray],
    min_subgroup: int = 100,
    power: float = -5.0,
) -> dict[str, float]:
    """The 2019 unintended-bias metric and its parts.

    scores: (n,) model scores of the label (e.g. toxicity probabilities).
    labels: (n,) that label, 0/1 or a fraction (positive when >= 0.5); rows labelled -1 are left out.
    identities: name -> (n,) identity annotation, a fraction or 0/1 (mentioned when >= 0.5; NaN = not).
    min_subgroup: identities mentioned by fewer (labelled) rows get only `size/<g>`, no AUCs.

    Keys: `final`, `overall_auc`, `subgroup_auc/<g>`, `bpsn_auc/<g>`, `bnsp_auc/<g>` (the identities with
    at least `min_subgroup` rows), `size/<g>` (every identity given), `power_mean/{subgroup,bpsn,bnsp}_auc`.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(scores)
    labels = _vector(labels, n, "labels")
    if not np.isfinite(scores).all():
        bad = int((~np.isfinite(scores)).sum())
        raise ModlabError(f"scores has {bad} NaN or infinite values; pass a finite score per row")
    if np.isnan(labels).any():
        raise ModlabError("labels has NaN values; mark unknown labels as -1 (they are left out)")
    if int(min_subgroup) < 1:
        raise ModlabError(f"min_subgroup={min_subgroup} must be at least 1")
    known = labels != IGNORE
    positive = labels[known] >= THRESHOLD
    scores = scores[known]
    out: dict[str, float] = {"overall_auc": _auc(scores, positive, np.ones(len(scores), dtype=bool))}
    per_auc: dict[str, list[float]] = {name: [] for name in AUCS}
    small, undefined = [], []
    for name, values in identities.items():
        # NaN >= 0.5 is False: a row without identity annotations mentions no identity, as in the challenge.
        member = _vector(values, n, f"identities[{name!r}]")[known] >= THRESHOLD
        out[f"size/{name}"] = float(member.sum())
        if member.sum() < int(min_subgroup):
            small.append(name)
            continue
        values_of = {
            "subgroup_auc": _auc(scores, positive, member),
            "bpsn_auc": _auc(scores, positive, (~member & positive) | (member & ~positive)),
            "bnsp_auc": _auc(scores, positive, (~member & ~positive) | (member & positive)),
        }
        for metric, value in values_of.items():
            out[f"{metric}/{name}"] = value
            per_auc[metric].append(value)
            if math.isnan(value):
                undefined.append(f"{metric}/{name}")
    if small:
        log.info("bias: %s have fewer than %d rows; left out of the bias metrics", ", ".join(small),
                 min_subgroup)
    if undefined:
        log.info("bias: %s have a single class; NaN and left out of the power means", ", ".join(undefined))
    for metric in AUCS:
        out[f"power_mean/{metric}"] = power_mean(per_auc[metric], power)
    # NaN propagates: without an overall AUC or any defined subgroup metric there is no final score.
    out["final"] = 0.25 * out["overall_auc"] + 0.25 * sum(out[f"power_mean/{m}"] for m in AUCS)
    return out


def identity_columns(meta: pd.DataFrame | None, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """name -> (n,) float identity annotations from a `LabeledTable.meta`.

    Without `names`: the `STANDARD_IDENTITIES` that `meta` has as numeric columns of values in [0, 1] or NaN
    (other columns, e.g. `kind` or annotator counts, are ignored). With `names`: exactly those columns, each
    of which must be such an annotation.
    """
    if meta is None:
        if names:
            raise ModlabError(
                "identity columns were asked for but the table has no meta; use a reader that keeps them"
            )
        return {}
    out = {}
    for name in names if names is not None else STANDARD_IDENTITIES:
        if name not in meta.columns:
            if names is not None:
                raise ModlabError(
                    f"identity column {name!r} is not in the table's meta (it has: "
                    f"{', '.join(map(str, meta.columns[:12])) or 'nothing'}); pick identity columns it has"
                )
            continue
        values = pd.to_numeric(meta[name], errors="coerce").to_numpy(dtype=np.float64)
        given = meta[name].notna().to_numpy()
        ok = np.isnan(values[given]).sum() == 0 and ((values[given] >= 0) & (values[given] <= 1)).all()
        if not ok:
            if names is not None:
                raise ModlabError(
                    f"identity column {name!r} is not an identity annotation (numbers in [0, 1], blank where "
                    "not annotated); pick another column"
                )
            continue
        out[name] = values
    return out
