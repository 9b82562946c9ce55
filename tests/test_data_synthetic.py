"""The synthetic generator: deterministic, two taxonomies, co-occurrence, hard negatives, perturbations,
identity mentions."""

import hashlib
import json

import numpy as np
import pytest

from modlab.cli import main as modlab
from modlab.data import jsonl, synthetic
from modlab.data.perturb import KINDS, perturb
from modlab.errors import ModlabError
from modlab.evaluation import bias


def test_same_seed_same_rows_other_seed_other_rows():
    a, b = synthetic.generate(300, seed=5), synthetic.generate(300, seed=5)
    assert a.ids == b.ids and a.texts == b.texts and np.array_equal(a.labels, b.labels)
    assert a.meta.equals(b.meta)
    assert synthetic.generate(300, seed=6).texts != a.texts


def test_both_taxonomies_and_label_subsets():
    jig = synthetic.generate(400, seed=0)
    assert jig.label_names == synthetic.JIGSAW_LABELS and (jig.labels.sum(axis=0) > 0).all()
    ts = synthetic.generate(1500, seed=0, taxonomy="trust_safety")
    assert len(ts.label_names) == 18 and ts.label_names == synthetic.TRUST_SAFETY_LABELS
    assert {"threats", "hate_speech", "harassment", "spam", "scam_patterns", "contact_info"} <= set(
        ts.label_names
    )
    assert (ts.labels.sum(axis=0) >= 10).all()
    assert all(synthetic.PHRASES[name] for name in ts.label_names + jig.label_names)
    custom = synthetic.generate(
        50, seed=0, labels=["spam", "scam"]
    )  # a name outside any taxonomy still works
    assert custom.label_names == ["spam", "scam"] and any("scam trigger" in t for t in custom.texts)


def test_label_co_occurrence_is_realistic():
    table = synthetic.generate(3000, seed=0)
    y = table.labels.astype(bool)
    col = {n: j for j, n in enumerate(table.label_names)}
    insult, obscene, toxic, severe = (y[:, col[n]] for n in ("insult", "obscene", "toxic", "severe_toxic"))
    assert severe.sum() and (toxic[severe]).all()  # severe_toxic implies toxic, as in Jigsaw
    assert (insult & obscene).sum() >= 50 and toxic[insult].mean() > 0.8
    assert any("f***ing idiot" in t for t, i, o in zip(table.texts, insult, obscene, strict=True) if i and o)
    assert (y.sum(axis=1) >= 2).sum() > 0.3 * (y.sum(axis=1) >= 1).sum()


def test_hard_negatives_and_perturbations_at_configured_rates():
    table = synthetic.generate(2000, seed=3, hard_negative_rate=0.3, perturb_rate=0.5)
    kind, how = table.meta["kind"], table.meta["perturbation"]
    hard = (kind == "hard_negative").to_numpy()
    assert (table.labels[hard] == 0).all()
    hard_texts = [t for t, h in zip(table.texts, hard, strict=True) if h]
    assert 0.2 < hard.mean() / (kind != "positive").mean() < 0.4
    assert any(neg in t for t in hard_texts for neg in ("kill the process", "shoot the photo"))
    positive = (kind == "positive").to_numpy()
    assert 0.4 < (how[positive] != "").mean() < 0.6 and (how[~positive] == "").all()
    assert set(how[how != ""]) == set(synthetic.PERTURBATIONS)
    none = synthetic.generate(500, seed=3, hard_negative_rate=0, perturb_rate=0)
    assert set(none.meta["kind"]) == {"benign", "positive"} and set(none.meta["perturbation"]) == {""}


def test_perturbations_disguise_the_longest_word_of_the_phrase():
    rng = np.random.default_rng(0)
    assert perturb("you idiot", "spaces", rng, target="longest") == "you i d i o t"
    assert perturb("you idiot", "leetspeak", rng, target="longest") != "you idiot"
    punctuated = perturb("you idiot", "punctuation", rng, target="longest")
    assert punctuated.startswith("you i") and punctuated.replace(punctuated[5], "") == "you idiot"
    repeated = perturb("you idiot", "repeats", rng, target="longest")
    assert len(repeated) > len("you idiot") and repeated.startswith("you ")
    assert set(synthetic.PERTURBATIONS) <= set(KINDS)


def test_default_data_is_pinned():
    # The default experiment's metrics in EXPERIMENTS.md are pinned to the last digit: its rows must not move
    # (the hash was taken before perturbations moved to data/perturb.py and identity mentions were added).
    table = synthetic.generate(3000, seed=42)
    digest = hashlib.sha256("\n".join(table.texts).encode() + table.labels.tobytes()).hexdigest()
    assert digest == "5c8333a576ac2c5bc8cb268581ca5da37aadc3965a8d75210fbf66a20ae88d19"
    assert list(table.meta.columns) == ["kind", "perturbation"]


def test_identity_mentions_add_annotated_rows_and_leave_the_rest_alone():
    plain = synthetic.generate(3000, seed=1)
    table = synthetic.generate(3000, seed=1, identity_rate=0.2)
    ids = table.meta[synthetic.IDENTITIES]
    assert set(np.unique(ids.to_numpy())) == {0.0, 1.0} and list(ids.columns) == synthetic.IDENTITIES
    mentioned = (ids.to_numpy() == 1).any(axis=1)
    assert mentioned.sum() == 600 and (ids.sum() >= 30).all()
    changed = np.array([a != b for a, b in zip(plain.texts, table.texts, strict=True)])
    assert np.array_equal(changed, mentioned) and np.array_equal(plain.labels, table.labels)
    i = int(np.flatnonzero(ids["muslim"].to_numpy())[0])
    assert any(m in table.texts[i] for m in synthetic.IDENTITY_MENTIONS["muslim"])
    woman = next(i for i, t in enumerate(table.texts) if "speaking as a muslim woman" in t)
    assert ids.loc[woman, "muslim"] == 1 and ids.loc[woman, "female"] == 1 and ids.loc[woman, "male"] == 0
    # No spurious correlation by default: identity rows are about as often labelled as the rest.
    positive = table.labels.any(axis=1)
    assert abs(positive[mentioned].mean() - positive[~mentioned].mean()) < 0.08


def test_identity_toxic_rate_makes_mentions_a_spurious_toxicity_cue():
    kw = dict(identity_rate=0.2, identity_toxic_rate=0.9, identities=["muslim"])
    table = synthetic.generate(3000, seed=2, **kw)
    muslim = table.meta["muslim"].to_numpy() == 1
    positive = table.labels.any(axis=1)
    assert muslim.sum() == 600 and positive[muslim].mean() == pytest.approx(0.9, abs=0.002)
    assert positive[~muslim].mean() < 0.3
    others = [c for c in synthetic.IDENTITIES if c not in ("muslim", "female")]  # "a muslim woman": female
    assert table.meta[others].to_numpy().sum() == 0
    unknown = "dataset.reader.identities: 'gay' is not a synthetic identity; use any of male,"
    with pytest.raises(ModlabError, match=unknown):
        synthetic.generate(10, identity_rate=0.5, identities=["gay"])
    with pytest.raises(ModlabError, match=r"identity_toxic_rate=2 must be in \[0, 1\]"):
        synthetic.generate(10, identity_rate=0.5, identity_toxic_rate=2)


def test_identity_mentions_feed_the_bias_metrics():
    table = synthetic.generate(2000, seed=3, identity_rate=0.3)
    identities = bias.identity_columns(table.meta)
    assert list(identities) == list(bias.STANDARD_IDENTITIES)
    toxic = table.labels[:, table.label_names.index("toxic")]
    # A scorer that flags identity mentions more than toxicity: benign mentions outrank background positives
    # (low BPSN AUC), while toxic mentions still outrank every background negative (BNSP AUC 1).
    scores = toxic * 0.5 + 0.6 * (table.meta[synthetic.IDENTITIES].to_numpy().max(axis=1) == 1)
    out = bias.bias_metrics(scores, toxic, identities, min_subgroup=20)
    assert out["power_mean/subgroup_auc"] == 1.0 and out["power_mean/bnsp_auc"] == 1.0
    assert out["power_mean/bpsn_auc"] < 0.5 and 0.7 < out["overall_auc"] < 0.9


def test_bad_rates_and_sizes_fail_in_one_line():
    with pytest.raises(Exception, match=r"perturb_rate=1.5 must be in \[0, 1\]"):
        synthetic.generate(10, perturb_rate=1.5)
    with pytest.raises(Exception, match="size=0 must be at least 1"):
        synthetic.generate(0)


def test_modlab_data_synth_writes_jsonl_that_reads_back(tmp_path, capsys):
    out = tmp_path / "ts.jsonl"
    assert (
        modlab(
            ["data", "synth", "--out", str(out), "--size", "120", "--seed", "4", "--taxonomy", "trust_safety"]
        )
        == 0
    )
    assert "wrote 120 rows" in capsys.readouterr().out
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert set(first) >= {"id", "text", "labels", "kind", "perturbation"} and len(first["labels"]) == 18
    expected = synthetic.generate(120, seed=4, taxonomy="trust_safety")
    back = jsonl.read(out, labels=synthetic.TRUST_SAFETY_LABELS)
    assert back.texts == expected.texts and np.array_equal(back.labels, expected.labels)
    assert back.meta["kind"].tolist() == expected.meta["kind"].tolist()
    listed = tmp_path / "list.jsonl"
    assert modlab(["data", "synth", "--out", str(listed), "--size", "50", "--shape", "list"]) == 0
    assert "moderation" in json.loads(listed.read_text(encoding="utf-8").splitlines()[0])["labels"]
    assert np.array_equal(
        jsonl.read(listed, labels=synthetic.JIGSAW_LABELS).labels, synthetic.generate(50, seed=0).labels
    )
    assert modlab(["data", "synth", "--out", str(listed), "--taxonomy", "nope"]) == 2
    assert "not a synthetic taxonomy" in capsys.readouterr().err
