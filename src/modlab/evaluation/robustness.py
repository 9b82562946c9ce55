"""Evasion robustness of a scored split: how a model's flags move when users disguise words.

Each perturbation kind of `data/perturb.py` is applied to a seeded sample of the split's texts (at most
`max_rows`, a `rate` share of them attacked), the perturbed texts are scored with the model's
`predict_proba`, and per kind the quality and the flips are reported. A row is *flagged* when any label
reaches its threshold. A fixed probe of benign texts with trigger-like words (`HARD_NEGATIVES`, distinct from
the synthetic data's own) measures false flags on text a keyword filter would get wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from modlab.data.perturb import KINDS, check_kinds, perturb_texts
from modlab.errors import ModlabError
from modlab.evaluation.metrics import IGNORE, binarize

# Benign: idioms, tech and sports jargon, news, and plain identity statements (a classic false flag).
HARD_NEGATIVES = (
    "how do i kill a zombie process on linux",
    "we shoot the wedding photos at noon",
    "the new update absolutely murders battery life",
    "she killed it at the presentation today",
    "this recipe is a killer for weeknight dinners",
    "hang the picture on the left wall",
    "the stock market crash of 1929 was devastating",
    "he is a beast on the basketball court",
    "the knife skills class starts at six",
    "our team got destroyed in the finals but it was fun",
    "i am going to attack this essay after lunch",
    "let's blow up the balloons for the party",
    "the assassin's creed sequel looks amazing",
    "the dead battery in my car needs replacing",
    "she shot a hole in one on the ninth",
    "the police report was filed on monday",
    "the gun show at the fairgrounds was cancelled",
    "my grandmother died peacefully last spring",
    "the war documentary won three awards",
    "the suicide prevention hotline is open all night",
    "the article explains how hate speech laws work",
    "the bloody mary at brunch was perfect",
    "the fire drill is at ten so leave your desks",
    "she beat the record by two seconds",
    "the pest control guy will exterminate the ants",
    "press the trigger on the spray bottle twice",
    "we need to execute the plan before friday",
    "the butcher cut the meat into thin slices",
    "the paint stripper removes old varnish easily",
    "my cat attacks my feet every morning",
    "the bomb squad training video was fascinating",
    "the virus scan found nothing on my laptop",
    "the dumbwaiter in the old house still works",
    "the drug trial results come out in may",
    "the sex of the kitten is hard to tell at birth",
    "i am a proud muslim and a nurse",
    "as a gay man i loved this film",
    "my black neighbour bakes the best bread",
    "the jewish deli downtown has great bagels",
    "women in science deserve more funding",
    "living with schizophrenia is hard but i manage",
    "the christian youth group cleaned up the park",
)


def _probs(predict_proba: Callable[[list[str]], np.ndarray], texts: list[str], num_labels: int) -> np.ndarray:
    if not texts:
        return np.zeros((0, num_labels))
    probs = np.asarray(predict_proba(list(texts)), dtype=np.float64)
    if probs.ndim == 1 and num_labels == 1:
        probs = probs[:, None]
    if probs.shape != (len(texts), num_labels):
        raise ModlabError(
            f"predict_proba returned shape {probs.shape} for {len(texts)} texts; it must return "
            f"({len(texts)}, {num_labels}) probabilities, one column per label"
        )
    if not np.isfinite(probs).all():
        raise ModlabError("predict_proba returned NaN or infinite values; it must return probabilities")
    return probs


def _auroc_macro(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean per-label ROC-AUC over the labels with both classes (-1 targets ignored)."""
    values = []
    for j in range(labels.shape[1]):
        known = labels[:, j] != IGNORE
        y = labels[known, j] >= 0.5
        if y.any() and not y.all():
            values.append(roc_auc_score(y, probs[known, j]))
    return float(np.mean(values)) if values else math.nan


def _f1_macro(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> float:
    """Mean per-label F1 at `thresholds` over the labels with positives (as `metrics.threshold_scores`)."""
    decisions = binarize(probs, thresholds)
    values = []
    for j in range(labels.shape[1]):
        known = labels[:, j] != IGNORE
        y = labels[known, j] >= 0.5
        if y.any():
            values.append(f1_score(y, decisions[known, j], zero_division=0))
    return float(np.mean(values)) if values else math.nan


def _share(flags: np.ndarray) -> float:
    return float(flags.mean()) if len(flags) else math.nan


def robustness_metrics(
    predict_proba: Callable[[list[str]], np.ndarray],
    texts: Sequence[str],
    labels: np.ndarray,
    thresholds: np.ndarray | float,
    clean_probs: np.ndarray | None = None,
    kinds: Sequence[str] = KINDS,
    rate: float = 1.0,
    max_rows: int = 1000,
    seed: int = 0,
    target: str = "all",
    hard_negatives: Sequence[str] = HARD_NEGATIVES,
) -> dict[str, float]:
    """Per perturbation kind, the model's quality and flips on perturbed texts; plus the hard-negative probe.

    predict_proba: texts -> (len(texts), num_labels) probabilities (a (n,) vector for one label).
    texts, labels: the split; labels (n, num_labels) 0/1 or fractions (positive when >= 0.5), -1 unknown.
    thresholds: (num_labels,) per-label decision thresholds (e.g. tuned on val), or one for all.
    clean_probs: (n, num_labels) the model's scores of `texts` if already computed; else they are scored.
    kinds, rate, seed, target: which perturbations, the share of sampled rows attacked, the seed of the
      sample and the perturbations, and which words are disguised (see `data/perturb.py`).
    max_rows: at most this many rows (a seeded sample) are used.

    Keys: `rows` (rows used), `clean/{auroc,f1_tuned}_macro` (on those rows, unperturbed), and per kind
    `<kind>/auroc_macro`, `<kind>/f1_tuned_macro` (at `thresholds`), `<kind>/evasion_rate` (share of attacked
    rows flagged on clean text that are no longer flagged), `<kind>/false_flag_rate` (share of attacked
    unflagged rows that become flagged), `<kind>/mean_abs_delta` (mean |score change| over attacked rows and
    labels); `hard_negatives/fpr` (share of `hard_negatives` flagged) and `hard_negatives/count`.
    A rate with nothing to count (no flagged row, say) is NaN.
    """
    kinds = check_kinds(kinds)
    texts = list(texts)
    labels = np.asarray(labels, dtype=np.float64)
    labels = labels[:, None] if labels.ndim == 1 else labels
    n = len(texts)
    if labels.ndim != 2 or len(labels) != n:
        raise ModlabError(f"labels has shape {labels.shape} for {n} texts; pass (texts, num_labels) labels")
    if n == 0:
        raise ModlabError("texts is empty; pass the split's texts")
    num_labels = labels.shape[1]
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if len(thresholds) == 1:
        thresholds = np.repeat(thresholds, num_labels)
    if len(thresholds) != num_labels:
        raise ModlabError(
            f"thresholds has {len(thresholds)} values for {num_labels} labels; pass one per label"
        )
    if int(max_rows) < 1:
        raise ModlabError(f"max_rows={max_rows} must be at least 1")
    if not 0 <= rate <= 1:
        raise ModlabError(f"rate={rate} must be in [0, 1] (the share of rows to perturb)")

    rows = np.arange(n)
    if n > int(max_rows):
        rows = np.sort(np.random.default_rng(seed).choice(n, size=int(max_rows), replace=False))
    texts, labels = [texts[i] for i in rows], labels[rows]
    if clean_probs is None:
        clean = _probs(predict_proba, texts, num_labels)
    else:
        clean = np.asarray(clean_probs, dtype=np.float64)
        clean = clean[:, None] if clean.ndim == 1 else clean
        if clean.shape != (n, num_labels):
            raise ModlabError(
                f"clean_probs has shape {clean.shape}; it must be ({n}, {num_labels}) like labels"
            )
        clean = clean[rows]
    flagged = binarize(clean, thresholds).any(axis=1).astype(bool)
    out: dict[str, float] = {
        "rows": float(len(rows)),
        "clean/auroc_macro": _auroc_macro(clean, labels),
        "clean/f1_tuned_macro": _f1_macro(clean, labels, thresholds),
    }
    for kind in kinds:
        perturbed, attacked = perturb_texts(texts, kind, rate=rate, seed=seed, target=target)
        changed = [i for i in np.flatnonzero(attacked) if perturbed[i] != texts[i]]
        probs = clean.copy()  # rows left alone keep their clean scores; only changed texts are re-scored
        probs[changed] = _probs(predict_proba, [perturbed[i] for i in changed], num_labels)
        now = binarize(probs, thresholds).any(axis=1).astype(bool)
        out[f"{kind}/auroc_macro"] = _auroc_macro(probs, labels)
        out[f"{kind}/f1_tuned_macro"] = _f1_macro(probs, labels, thresholds)
        out[f"{kind}/evasion_rate"] = _share(~now[attacked & flagged])
        out[f"{kind}/false_flag_rate"] = _share(now[attacked & ~flagged])
        delta = np.abs(probs - clean)[attacked]
        out[f"{kind}/mean_abs_delta"] = float(delta.mean()) if delta.size else math.nan
    hard = _probs(predict_proba, list(hard_negatives), num_labels)
    out["hard_negatives/fpr"] = _share(binarize(hard, thresholds).any(axis=1))
    out["hard_negatives/count"] = float(len(hard_negatives))
    return out
