"""evaluation/bias.py: the Jigsaw 2019 unintended-bias metric by hand, against brute force, on real rows."""

import itertools
import logging
import math
import re

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from modlab.data import civil_comments
from modlab.errors import ModlabError
from modlab.evaluation import bias

IDENTITY_DATA = SHARED_DATA / "civil_comments-identities"


def pairwise_auc(scores, positive) -> float:
    """P(score of a positive > score of a negative), ties counting half: counted over every pair."""
    pos = [s for s, p in zip(scores, positive, strict=True) if p]
    neg = [s for s, p in zip(scores, positive, strict=True) if not p]
    if not pos or not neg:
        return math.nan
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_hand_computed_example():
    #        row:   1     2     3     4     5     6     7     8     9
    scores = [0.90, 0.85, 0.60, 0.20, 0.80, 0.40, 0.30, 0.10, 0.99]
    labels = [1, 0, 0.7, 0, 1, 0.3, 1, 0, -1]  # >= 0.5 is toxic: rows 1, 3, 5, 7; row 9 is unlabelled
    g = [1, 0.5, 0.8, 1, 0, np.nan, 0.2, 0, 1]  # g: rows 1-4 (NaN: not annotated, so not g)
    h = [0, 0, 0, 0, 1, 1, 1, 1, 0]  # h: rows 5-8
    k = [1, 0, 0, 0, 0, 0, 0, 1, 0]  # k: 2 rows, fewer than min_subgroup
    out = bias.bias_metrics(np.array(scores), np.array(labels), {"g": g, "h": h, "k": k}, min_subgroup=4)
    # overall: positives .9 .6 .8 .3 vs negatives .85 .2 .4 .1 -> wins 4 + 3 + 3 + 2 = 12 of 16
    assert out["overall_auc"] == 0.75
    # g: subgroup .9 .6 vs .85 .2 -> 3/4; BPSN background positives .8 .3 vs g negatives .85 .2 -> 2/4;
    #    BNSP g positives .9 .6 vs background negatives .4 .1 -> 4/4
    assert (out["subgroup_auc/g"], out["bpsn_auc/g"], out["bnsp_auc/g"]) == (0.75, 0.5, 1.0)
    # h: subgroup .8 .3 vs .4 .1 -> 3/4; BPSN .9 .6 vs .4 .1 -> 4/4; BNSP .8 .3 vs .85 .2 -> 2/4
    assert (out["subgroup_auc/h"], out["bpsn_auc/h"], out["bnsp_auc/h"]) == (0.75, 1.0, 0.5)
    assert (out["size/g"], out["size/h"], out["size/k"]) == (4, 4, 2) and "subgroup_auc/k" not in out
    # M_-5(.5, 1) = ((.5^-5 + 1^-5) / 2)^(-1/5) = 16.5^(-0.2) = e^(-ln(16.5) / 5) = e^(-0.560672) = 0.570825
    assert out["power_mean/subgroup_auc"] == pytest.approx(0.75)
    assert out["power_mean/bpsn_auc"] == pytest.approx(0.570825, abs=1e-6) == out["power_mean/bnsp_auc"]
    # final = .25 * .75 + .25 * (.75 + .570825 + .570825) = .1875 + .472913 = 0.660413
    assert out["final"] == pytest.approx(0.660413, abs=1e-6)


def test_matches_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    n = 400
    scores = rng.random(n).round(2)  # rounded: plenty of ties
    labels = (rng.random(n) < 0.3).astype(float)
    identities = {name: (rng.random(n) < share).astype(float) for name, share in
                  (("a", 0.3), ("b", 0.15), ("c", 0.5), ("tiny", 0.05))}
    out = bias.bias_metrics(scores, labels, identities, min_subgroup=50, power=-5.0)
    pos = labels == 1
    expected = {"overall_auc": pairwise_auc(scores, pos)}
    for name, member in identities.items():
        member = member == 1
        expected[f"size/{name}"] = float(member.sum())
        if member.sum() < 50:
            continue
        bpsn, bnsp = (~member & pos) | (member & ~pos), (~member & ~pos) | (member & pos)
        expected[f"subgroup_auc/{name}"] = pairwise_auc(scores[member], pos[member])
        expected[f"bpsn_auc/{name}"] = pairwise_auc(scores[bpsn], pos[bpsn])
        expected[f"bnsp_auc/{name}"] = pairwise_auc(scores[bnsp], pos[bnsp])
    for metric in bias.AUCS:
        values = [v for key, v in expected.items() if key.startswith(f"{metric}/")]
        expected[f"power_mean/{metric}"] = (sum(v**-5 for v in values) / len(values)) ** (-1 / 5)
    expected["final"] = 0.25 * expected["overall_auc"] + 0.25 * sum(
        expected[f"power_mean/{m}"] for m in bias.AUCS
    )
    assert "subgroup_auc/tiny" not in expected and len(expected) == 1 + 4 + 9 + 3 + 1
    assert out == pytest.approx(expected, rel=1e-12)


def test_single_class_subgroups_are_nan_listed_and_left_out(caplog):
    scores = np.linspace(0, 1, 12)
    labels = np.array([0, 1] * 6, dtype=float)
    clean = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0])  # rows 5-8: both classes
    benign = np.array([1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0])  # rows 1, 3, 5: negatives only
    with caplog.at_level(logging.INFO, logger="modlab.evaluation.bias"):
        out = bias.bias_metrics(scores, labels, {"clean": clean, "benign": benign}, min_subgroup=3)
    assert math.isnan(out["subgroup_auc/benign"]) and math.isnan(out["bnsp_auc/benign"])
    assert not math.isnan(out["bpsn_auc/benign"])  # background positives vs its negatives is defined
    assert out["power_mean/subgroup_auc"] == out["subgroup_auc/clean"]
    assert out["power_mean/bnsp_auc"] == out["bnsp_auc/clean"]
    assert out["power_mean/bpsn_auc"] < max(out["bpsn_auc/clean"], out["bpsn_auc/benign"])
    assert math.isfinite(out["final"])
    assert "subgroup_auc/benign, bnsp_auc/benign have a single class" in caplog.text

    # Nothing big enough (or no identities at all): power means and final are NaN, sizes still reported.
    with caplog.at_level(logging.INFO, logger="modlab.evaluation.bias"):
        none = bias.bias_metrics(scores, labels, {"clean": clean}, min_subgroup=5)
    assert none["size/clean"] == 4 and "subgroup_auc/clean" not in none
    assert math.isnan(none["power_mean/bpsn_auc"]) and math.isnan(none["final"])
    assert not math.isnan(none["overall_auc"]) and "clean have fewer than 5 rows" in caplog.text
    one_class = bias.bias_metrics(scores, np.zeros(12), {"clean": clean}, min_subgroup=1)
    assert math.isnan(one_class["overall_auc"]) and math.isnan(one_class["final"])


def test_bad_input_fails_in_one_line():
    with pytest.raises(ModlabError, match=r"identities\['male'\] has 3 values for 4 scores; pass one value"):
        bias.bias_metrics(np.zeros(4), np.zeros(4), {"male": [1, 0, 1]})
    with pytest.raises(ModlabError, match="labels has 2 values for 4 scores"):
        bias.bias_metrics(np.zeros(4), np.zeros(2), {})
    with pytest.raises(ModlabError, match="scores has 1 NaN or infinite values"):
        bias.bias_metrics(np.array([0.1, np.nan]), np.zeros(2), {})
    with pytest.raises(ModlabError, match="min_subgroup=0 must be at least 1"):
        bias.bias_metrics(np.zeros(2), np.zeros(2), {}, min_subgroup=0)


def test_identity_columns_picks_numeric_identity_annotations():
    meta = pd.DataFrame({
        "male": [1.0, np.nan, 0.6],
        "female": [0, 0, 1],
        "christian": ["yes", "no", "yes"],  # not an annotation: ignored by default
        "asian": [0.0, 1.0, 0.0],  # an identity, but not one of the standard nine
        "kind": ["positive", "benign", "benign"],
        "identity_annotator_count": [4, 0, 10],
    })
    found = bias.identity_columns(meta)
    assert list(found) == ["male", "female"]
    assert np.array_equal(found["male"], [1.0, np.nan, 0.6], equal_nan=True)
    assert list(bias.identity_columns(meta, ["asian", "male"])) == ["asian", "male"]
    with pytest.raises(ModlabError, match="column 'identity_annotator_count' is not an identity annotation"):
        bias.identity_columns(meta, ["identity_annotator_count"])
    with pytest.raises(ModlabError, match="identity column 'jewish' is not in the table's meta"):
        bias.identity_columns(meta, ["jewish"])
    assert bias.identity_columns(None) == {}


TOXIC_WORDS = re.compile(
    r"\b(stupid|idiot\w*|fool\w*|dumb|moron\w*|ignorant|pathetic|hate|kill\w*|crap|damn|hell|racist|"
    r"liar\w*|loser\w*|garbage|trash|disgusting|scum|ass|suck\w*|ridiculous)\b",
    re.IGNORECASE,
)


def keyword_scores(texts) -> np.ndarray:
    return np.array([len(TOXIC_WORDS.findall(t)) for t in texts], dtype=float)


def test_real_civil_comments_rows_through_the_reader():
    table = civil_comments.read(IDENTITY_DATA / "train.csv")
    identities = bias.identity_columns(table.meta)
    assert list(identities) == list(bias.STANDARD_IDENTITIES)
    toxicity = table.labels[:, table.label_names.index("toxicity")]
    out = bias.bias_metrics(keyword_scores(table.texts), toxicity, identities, min_subgroup=50)
    # The per-identity row counts of the data README (>= 0.5).
    sizes = {"male": 98, "female": 141, "homosexual_gay_or_lesbian": 37, "christian": 65, "jewish": 18,
             "muslim": 18, "black": 55, "white": 61, "psychiatric_or_mental_illness": 22}
    assert {g: out[f"size/{g}"] for g in sizes} == sizes
    scored = [g for g, size in sizes.items() if size >= 50]
    assert {k for k in out if "_auc/" in k} == {f"{m}/{g}" for m in bias.AUCS for g in scored}
    assert all(math.isfinite(v) and 0 <= v <= 1 for k, v in out.items() if not k.startswith("size/"))
    assert out["overall_auc"] > 0.6  # the keyword rule is weak but better than chance
    subgroup = [out[f"subgroup_auc/{g}"] for g in scored]
    assert min(subgroup) < out["power_mean/subgroup_auc"] < np.mean(subgroup)  # p = -5 leans to the worst


def test_real_gender_subset_with_the_default_minimum():
    frame = pd.read_csv(IDENTITY_DATA / "subset.csv")
    identities = {g: frame[g].to_numpy() for g in ("male", "female")}
    out = bias.bias_metrics(keyword_scores(frame["comment"]), frame["target"].to_numpy(), identities)
    assert (out["size/male"], out["size/female"]) == (1000, 1000)  # the README's counts
    assert all(math.isfinite(out[f"{m}/{g}"]) for m in bias.AUCS for g in identities)
    assert math.isfinite(out["final"]) and out["final"] > 0.5
