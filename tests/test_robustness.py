"""evaluation/robustness.py: evasion and false flags under perturbations, with toy keyword models."""

import math
import re

import numpy as np
import pytest

from modlab.data import perturb, synthetic
from modlab.errors import ModlabError
from modlab.evaluation import robustness

TOXIC = ["you idiot", "what an idiot you are", "idiot", "the idiot strikes again", "stop it idiot"]
BENIGN = ["have a nice day", "thanks for the edit", "the weather is lovely", "see you at the meetup"]
TEXTS = TOXIC * 4 + BENIGN * 5  # 20 toxic, 20 benign
LABELS = np.array([[1.0]] * 20 + [[0.0]] * 20)


def keyword_model(texts):
    """Flags the word "idiot"; lowercases first, so case changes cannot fool it."""
    return np.array([[1.0 if "idiot" in re.findall(r"[a-z]+", t.lower()) else 0.0] for t in texts])


def test_leetspeak_evades_a_keyword_model_and_case_changes_do_not():
    out = robustness.robustness_metrics(keyword_model, TEXTS, LABELS, thresholds=[0.5])
    assert out["rows"] == 40 and out["clean/auroc_macro"] == 1.0 and out["clean/f1_tuned_macro"] == 1.0
    assert out["leetspeak/evasion_rate"] == 1.0 and out["leetspeak/false_flag_rate"] == 0.0
    assert out["leetspeak/mean_abs_delta"] == 0.5  # every toxic row drops from 1 to 0, benign rows stay
    assert out["leetspeak/auroc_macro"] == 0.5 and out["leetspeak/f1_tuned_macro"] == 0.0
    assert out["case/evasion_rate"] == 0.0 and out["case/mean_abs_delta"] == 0.0
    assert out["case/auroc_macro"] == 1.0 and out["case/f1_tuned_macro"] == 1.0
    for kind in ("spaces", "repeats", "homoglyphs", "zero_width", "punctuation"):
        assert out[f"{kind}/evasion_rate"] == 1.0, kind
    assert set(out) == {"rows", "clean/auroc_macro", "clean/f1_tuned_macro", "hard_negatives/fpr",
                        "hard_negatives/count"} | {
        f"{kind}/{metric}" for kind in perturb.KINDS
        for metric in ("auroc_macro", "f1_tuned_macro", "evasion_rate", "false_flag_rate", "mean_abs_delta")
    }


def test_false_flags_from_a_model_that_distrusts_odd_characters():
    def odd_model(texts):
        return np.array([float(any(ord(c) > 127 for c in t)) for t in texts])  # one label, as a vector

    out = robustness.robustness_metrics(odd_model, TEXTS, LABELS, 0.5, kinds=["homoglyphs", "leetspeak"])
    assert out["homoglyphs/false_flag_rate"] == 1.0 and out["leetspeak/false_flag_rate"] == 0.0
    assert math.isnan(out["homoglyphs/evasion_rate"])  # nothing was flagged on clean text


def test_two_labels_flag_when_either_label_fires():
    def model(texts):
        words = [set(re.findall(r"[a-z]+", t.lower())) for t in texts]
        return np.array([["idiot" in w, "moron" in w] for w in words], dtype=float)

    texts = ["you idiot", "you moron", "nice day", "idiot and moron"] * 5
    labels = np.array([[1, 0], [0, 1], [0, 0], [1, 1]] * 5, dtype=float)
    out = robustness.robustness_metrics(model, texts, labels, [0.5, 0.9], kinds=["leetspeak", "case"])
    assert out["case/auroc_macro"] == 1.0 and out["leetspeak/auroc_macro"] == 0.5
    assert out["leetspeak/evasion_rate"] == 1.0 and out["leetspeak/mean_abs_delta"] == 0.5


def test_deterministic_sample_cap_rate_and_clean_probs():
    def noisy_model(texts):
        seen.append(list(texts))
        return np.array([[min(1.0, 0.1 * t.count("1") + 0.6 * ("idiot" in t))] for t in texts])

    texts = [f"comment {i} " + ("you idiot" if i % 3 else "fine") for i in range(60)]
    labels = np.array([[float(i % 3 > 0)] for i in range(60)])
    seen: list[list[str]] = []
    kw = dict(kinds=["leetspeak", "spaces"], rate=0.5, max_rows=20, seed=3)
    a = robustness.robustness_metrics(noisy_model, texts, labels, 0.5, **kw)
    # 20 sampled rows scored clean; half of them attacked per kind, only those re-scored; then the probe.
    assert a["rows"] == 20 and [len(batch) for batch in seen] == [20, 10, 10, len(robustness.HARD_NEGATIVES)]
    assert set(seen[0]) < set(texts) and set(seen[1]) & set(texts) == set()
    assert a == robustness.robustness_metrics(noisy_model, texts, labels, 0.5, **kw)
    assert a != robustness.robustness_metrics(noisy_model, texts, labels, 0.5, **{**kw, "seed": 4})
    assert a["leetspeak/evasion_rate"] == 1.0  # of the attacked rows only: the others kept their flags

    seen.clear()
    clean = noisy_model(texts)
    given = robustness.robustness_metrics(noisy_model, texts, labels, 0.5, clean_probs=clean, **kw)
    seen.pop(0)  # the call made above to build clean_probs
    assert given == a and [len(batch) for batch in seen] == [10, 10, len(robustness.HARD_NEGATIVES)]


def test_hard_negative_probe():
    probes = robustness.HARD_NEGATIVES
    assert len(probes) >= 30 and len(set(probes)) == len(probes)
    assert not set(probes) & set(synthetic.HARD_NEGATIVES)  # a probe the synthetic training data never shows
    out = robustness.robustness_metrics(keyword_model, TEXTS, LABELS, 0.5, kinds=["case"])
    assert out["hard_negatives/fpr"] == 0.0 and out["hard_negatives/count"] == len(probes)

    def trigger_model(texts):
        return np.array([[float(bool(re.search(r"kill|shoot|attack|bomb|gun|die|dead", t)))] for t in texts])

    out = robustness.robustness_metrics(trigger_model, TEXTS, LABELS, 0.5, kinds=["case"])
    fpr = out["hard_negatives/fpr"]
    flagged = sum(bool(trigger_model([t])[0, 0]) for t in probes)
    assert fpr == flagged / len(probes) and 0.2 < fpr < 0.5


def test_bad_arguments_fail_in_one_line():
    unknown = r"kinds=\['leet'\]: 'leet' is not a perturbation kind; use any of"
    with pytest.raises(ModlabError, match=unknown) as err:
        robustness.robustness_metrics(keyword_model, TEXTS, LABELS, 0.5, kinds=["leet"])
    assert "\n" not in str(err.value) and ", ".join(perturb.KINDS) in str(err.value)
    with pytest.raises(ModlabError, match="thresholds has 2 values for 1 labels"):
        robustness.robustness_metrics(keyword_model, TEXTS, LABELS, [0.5, 0.5])
    with pytest.raises(ModlabError, match=r"predict_proba returned shape \(40, 2\) for 40 texts"):
        robustness.robustness_metrics(lambda t: np.zeros((len(t), 2)), TEXTS, LABELS, 0.5)
    with pytest.raises(ModlabError, match=r"clean_probs has shape \(3, 1\); it must be \(40, 1\)"):
        robustness.robustness_metrics(keyword_model, TEXTS, LABELS, 0.5, clean_probs=np.zeros((3, 1)))
    with pytest.raises(ModlabError, match="max_rows=0 must be at least 1"):
        robustness.robustness_metrics(keyword_model, TEXTS, LABELS, 0.5, max_rows=0)
