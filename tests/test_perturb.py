"""data/perturb.py: each kind disguises words as intended, deterministically; bad kinds fail in one line."""

import re
import unicodedata

import numpy as np
import pytest

from modlab.data import perturb
from modlab.errors import ModlabError


def rng(seed=0):
    return np.random.default_rng(seed)


def test_each_kind_disguises_every_long_word_and_keeps_short_ones():
    text = "you are an idiot and a moron"
    for kind in perturb.KINDS:
        out = perturb.perturb(text, kind, rng())
        assert out != text, kind
        # "an" and "a" are too short for target="all"; the long words all change.
        assert " an " in out and " a " in out, (kind, out)
        # Word by word: "iiidiot" is no longer the word "idiot", though a substring match still finds it.
        assert not {"idiot", "moron"} & set(out.split()), (kind, out)


def test_kinds_do_what_their_names_say():
    assert perturb.perturb("idiot", "spaces", rng()) == "i d i o t"
    leet = perturb.perturb("idiot", "leetspeak", rng())
    assert set(leet) <= set("idiot134570") and leet != "idiot"
    dotted = perturb.perturb("idiot", "punctuation", rng())
    assert len(dotted) == 9 and dotted[1] in ".*-_" and dotted.replace(dotted[1], "") == "idiot"
    repeated = perturb.perturb("idiot", "repeats", rng())
    assert 7 <= len(repeated) <= 9 and re.sub(r"(.)\1+", r"\1", repeated) == "idiot"
    homoglyphs = perturb.perturb("idiot", "homoglyphs", rng())
    assert len(homoglyphs) == 5 and homoglyphs != "idiot"
    assert {unicodedata.name(c).split()[0] for c in homoglyphs if c not in "idiot"} <= {"CYRILLIC", "GREEK"}
    zero = perturb.perturb("idiot", "zero_width", rng())
    assert len(zero) > 5 and "".join(c for c in zero if c not in perturb.ZERO_WIDTH) == "idiot"
    cased = perturb.perturb("idiot", "case", rng())
    assert cased != "idiot" and cased.lower() == "idiot"


def test_longest_target_changes_only_the_longest_word_and_keeps_whitespace():
    out = perturb.perturb("you  absolute\tidiot", "spaces", rng(), target="longest")
    assert out == "you  a b s o l u t e\tidiot"
    assert perturb.perturb("a b", "case", rng()) == "A b"  # no word of 3+ letters: the longest (first) one
    assert perturb.perturb("", "leetspeak", rng()) == ""
    assert perturb.perturb("42 99", "leetspeak", rng()) == "42 99"  # nothing to swap


def test_same_seed_same_strings_and_rows_across_kinds():
    texts = [f"row {i} you idiot moron" for i in range(50)]
    a, mask_a = perturb.perturb_texts(texts, "homoglyphs", rate=0.3, seed=7)
    b, mask_b = perturb.perturb_texts(texts, "homoglyphs", rate=0.3, seed=7)
    assert a == b and np.array_equal(mask_a, mask_b) and mask_a.sum() == 15
    assert all((x != t) == m for x, t, m in zip(a, texts, mask_a, strict=True))
    _, mask_leet = perturb.perturb_texts(texts, "leetspeak", rate=0.3, seed=7)
    assert np.array_equal(mask_leet, mask_a)  # every kind attacks the same rows
    c, mask_c = perturb.perturb_texts(texts, "homoglyphs", rate=0.3, seed=8)
    assert not np.array_equal(mask_c, mask_a) and c != a
    every, mask = perturb.perturb_texts(texts, "case", rate=1.0, seed=0)
    assert mask.all() and all(x != t for x, t in zip(every, texts, strict=True))
    assert perturb.perturb_texts(texts, "case", rate=0.0)[0] == texts


def test_bad_kind_target_or_rate_fail_in_one_line():
    unknown = r"kind=\['l33t'\]: 'l33t' is not a perturbation kind; use any of leetspeak, "
    with pytest.raises(ModlabError, match=unknown) as err:
        perturb.perturb("x", "l33t", rng())
    assert "\n" not in str(err.value) and all(k in str(err.value) for k in perturb.KINDS)
    with pytest.raises(ModlabError, match="kinds=\\[\\]: no perturbation kind given"):
        perturb.check_kinds([])
    with pytest.raises(ModlabError, match="target='some' is not a perturbation target"):
        perturb.perturb("x", "case", rng(), target="some")
    with pytest.raises(ModlabError, match=r"rate=1.5 must be in \[0, 1\]"):
        perturb.perturb_texts(["x"], "case", rate=1.5)
