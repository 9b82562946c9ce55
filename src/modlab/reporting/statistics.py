"""The statistics behind "A beats B": mean ± std over repeats, paired intervals over folds/seeds or test rows.

Pure numpy/scipy on arrays; `modlab.reporting.compare` reads the runs, pairs them and prints the result.

- `summarize`: mean, sample standard deviation (ddof=1) and n of a metric over repeats (seeds, folds).
- `paired_t`: the mean paired difference of two configs over the same folds/seeds with a t-interval
  (scipy.stats.ttest_rel); the pairing removes the fold-to-fold variation both configs share.
- `paired_bootstrap`: two single runs scored on the same test rows: rows are resampled with replacement
  (the same resample for both runs, so the difference is paired by row), the metric recomputed on each
  resample, and the percentile interval of the differences taken.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from modlab.errors import ModlabError

CONFIDENCE = 0.95
RESAMPLES = 1000
CHUNK_CELLS = 4_000_000  # scores held at once while resampling (labels x resamples x rows)


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float  # NaN below two values
    n: int


def summarize(values) -> Summary:
    """Mean ± sample std (ddof=1) of the defined (non-NaN) values."""
    x = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    x = x[~np.isnan(x)]
    if not len(x):
        return Summary(math.nan, math.nan, 0)
    return Summary(float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan, len(x))


@dataclass(frozen=True)
class Difference:
    """A - B with its confidence interval; `n`: pairs (folds/seeds) or rows resampled."""

    estimate: float
    low: float
    high: float
    n: int
    method: str
    confidence: float = CONFIDENCE
    p_value: float | None = None  # paired t only
    undefined: int = 0            # bootstrap resamples where the metric is undefined (left out)

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_t(a, b, confidence: float = CONFIDENCE) -> Difference:
    """Mean of a_i - b_i and its t-interval (n - 1 degrees of freedom) over n >= 2 pairs."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_t needs two 1-d arrays of one length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ModlabError(f"a paired t-interval needs at least 2 pairs, got {len(a)}; run both configs over the "
                          "same folds or seeds (e.g. -m data.folds=5 'data.fold=range(5)')")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ModlabError("the metric is undefined (NaN) in some paired runs; pick another with --sort")
    with warnings.catch_warnings():  # identical differences: scipy warns, the interval is the point itself
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(a, b)
        interval = result.confidence_interval(confidence)
    d = float(np.mean(a - b))
    low, high = (d, d) if np.ptp(a - b) == 0 else (float(interval.low), float(interval.high))
    return Difference(d, low, high, len(a), "paired t over folds/seeds", confidence,
                      p_value=float(result.pvalue) if np.ptp(a - b) > 0 else (1.0 if d == 0 else 0.0))


def targets_of(labels) -> np.ndarray:
    """Integer targets as the metrics use them: soft labels binarized at 0.5, unknown (< 0) kept as -1."""
    labels = np.asarray(labels, dtype=np.float64)
    return np.where(labels < 0, -1, (labels >= 0.5).astype(np.int64))


def auroc(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """ROC-AUC along the last axis (the Mann-Whitney U from average ranks, ties count half); targets of -1
    are ignored; NaN where a row set has no positives or no negatives."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets)
    # Unknown rows rank above every known one, which leaves the known rows' ranks as they are.
    ranks = stats.rankdata(np.where(targets >= 0, scores, np.inf), axis=-1)
    positive = targets == 1
    p, n = positive.sum(axis=-1), (targets == 0).sum(axis=-1)
    u = (ranks * positive).sum(axis=-1) - p * (p + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((p > 0) & (n > 0), u / (p * n), np.nan)


def auroc_statistic(metric: str, label_names: list[str]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """f(scores, targets) -> the metric, for arrays [labels, ..., rows]: `auroc_macro` (mean over the labels
    where it is defined, as metrics.json's macro), `auroc_micro` (every (row, label) pair pooled) or
    `auroc/<label>`."""
    if metric == "auroc_macro":
        def macro(scores, targets):
            with warnings.catch_warnings():  # a resample where every label is undefined stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                return np.nanmean(auroc(scores, targets), axis=0)
        return macro
    if metric == "auroc_micro":
        def micro(scores, targets):
            pooled = [np.moveaxis(x, 0, -2).reshape(*x.shape[1:-1], -1) for x in (scores, targets)]
            return auroc(*pooled)
        return micro
    label = metric.removeprefix("auroc/")
    if metric.startswith("auroc/") and label in label_names:
        j = label_names.index(label)
        return lambda scores, targets: auroc(scores[j], targets[j])
    raise ModlabError(f"the bootstrap over test rows recomputes ROC-AUC from predictions.csv, not {metric!r}; "
                      f"use --sort test/auroc_macro, test/auroc_micro or test/auroc/<label> "
                      f"(labels: {', '.join(label_names)})")


def resample_indices(rows: int, resamples: int, seed: int, chunk: int):
    """Row indices of each bootstrap resample, `chunk` resamples at a time.

    Resample k has its own generator (spawned from `seed`), so its rows do not depend on the chunking: the same
    seed gives the same resamples whatever the data size or memory budget.
    """
    children = np.random.SeedSequence(seed).spawn(resamples)
    for start in range(0, resamples, chunk):
        yield np.stack([np.random.default_rng(c).integers(0, rows, size=rows) for c in children[start:start + chunk]])


def paired_bootstrap(statistic, a: np.ndarray, b: np.ndarray, targets: np.ndarray, resamples: int = RESAMPLES,
                     seed: int = 0, confidence: float = CONFIDENCE) -> Difference:
    """statistic(A) - statistic(B) on rows paired by position ([labels, rows] arrays) and its percentile
    interval over `resamples` resamples of the rows.

    Resampled by hand rather than with scipy.stats.bootstrap: a resample in which the metric is undefined
    (a rare label drawn without positives) is left out, as metrics.json leaves such a label out, where
    scipy would turn the whole interval into NaN.
    """
    a, b, targets = (np.asarray(x) for x in (a, b, targets))
    if not (a.shape == b.shape == targets.shape) or a.ndim != 2:
        raise ValueError(f"paired_bootstrap needs [labels, rows] arrays of one shape: {a.shape}, {b.shape}, "
                         f"{targets.shape}")
    if resamples < 1:
        raise ModlabError(f"--resamples {resamples} must be at least 1 (1000+ for a 95% interval)")
    estimate = float(statistic(a, targets) - statistic(b, targets))
    if math.isnan(estimate):
        raise ModlabError("the metric is undefined on these rows (a label without positives or negatives); "
                          "pick another with --sort")
    rows = a.shape[1]
    chunk = max(1, CHUNK_CELLS // max(1, a.size))
    differences = np.concatenate([statistic(a[:, i], targets[:, i]) - statistic(b[:, i], targets[:, i])
                                  for i in resample_indices(rows, resamples, seed, chunk)])
    defined = differences[~np.isnan(differences)]
    if not len(defined):
        raise ModlabError("the metric is undefined in every resample; pick a label with more positives (--sort)")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return Difference(estimate, float(low), float(high), rows, f"paired bootstrap over rows, {resamples} resamples",
                      confidence, undefined=int(len(differences) - len(defined)))
