"""The synthetic generator: deterministic, two taxonomies, co-occurrence, hard negatives, perturbations."""

import json

import numpy as np
import pytest

from modlab.cli import main as modlab
from modlab.data import jsonl, synthetic


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


def test_perturbations_disguise_the_phrase():
    rng = np.random.default_rng(0)
    assert synthetic.perturb("you idiot", "spaces", rng) == "you i d i o t"
    assert synthetic.perturb("you idiot", "leetspeak", rng) != "you idiot"
    punctuated = synthetic.perturb("you idiot", "punctuation", rng)
    assert punctuated.startswith("you i") and punctuated.replace(punctuated[5], "") == "you idiot"
    repeated = synthetic.perturb("you idiot", "repeats", rng)
    assert len(repeated) > len("you idiot") and repeated.startswith("you ")


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
