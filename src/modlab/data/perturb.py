"""Deterministic filter-evasion perturbations of text, the one implementation modlab uses.

Kinds (`KINDS`), each disguising a word the way users dodge moderation filters:

- leetspeak: "idiot" -> "1d10t"
- spaces: "idiot" -> "i d i o t"
- repeats: "idiot" -> "idiiiot"
- homoglyphs: Latin letters swapped for Cyrillic/Greek look-alikes ("іdіоt")
- zero_width: invisible characters between letters ("id\u200biot")
- case: "idiot" -> "iDiOT"
- punctuation: "idiot" -> "i.d.i.o.t"

`perturb(text, kind, rng)` disguises every word of 3+ characters (`target="all"`) or only the longest one
(`target="longest"`, what `data/synthetic.py` does to a label phrase). `perturb_texts` perturbs a `rate`
share of a list of texts from a seed: the same seed gives the same rows and the same strings.
"""

from __future__ import annotations

import re

import numpy as np

from modlab.errors import ModlabError

KINDS = ("leetspeak", "spaces", "repeats", "homoglyphs", "zero_width", "case", "punctuation")
TARGETS = ("all", "longest")
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
# Latin -> Cyrillic (lower case, where a look-alike exists) or Greek (upper case, the rest).
HOMOGLYPHS = {
    "a": "\u0430", "c": "\u0441", "d": "\u0501", "e": "\u0435", "h": "\u04bb", "i": "\u0456", "j": "\u0458",
    "k": "\u03ba", "l": "\u04cf", "o": "\u043e", "p": "\u0440", "s": "\u0455", "u": "\u03c5", "v": "\u03bd",
    "w": "\u051d", "x": "\u0445", "y": "\u0443",
    "A": "\u0391", "B": "\u0392", "C": "\u0421", "E": "\u0395", "H": "\u0397", "I": "\u0399", "J": "\u0408",
    "K": "\u039a", "M": "\u039c", "N": "\u039d", "O": "\u039f", "P": "\u03a1", "S": "\u0405", "T": "\u03a4",
    "X": "\u03a7", "Y": "\u03a5", "Z": "\u0396",
}
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060")  # zero-width space, non-joiner, joiner; word joiner
PUNCTUATION = [".", "*", "-", "_"]
MIN_WORD = 3  # shorter words ("a", "is") are left alone by target="all"
_SPACES = re.compile(r"(\s+)")


def check_kinds(kinds, field: str = "kinds") -> tuple[str, ...]:
    """`kinds` as a tuple, or a one-line error naming the unknown kind and the known ones."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        what = f"{unknown[0]!r} is not a perturbation kind" if unknown else "no perturbation kind given"
        raise ModlabError(f"{field}={list(kinds)}: {what}; use any of {', '.join(KINDS)}")
    return kinds


def _swap(word: str, table: dict[str, str], p: float, rng: np.random.Generator) -> str:
    # Draws only for swappable characters: leetspeak must match the draws data/synthetic.py always made.
    swapped = [table[c] if c in table and rng.random() < p else c for c in word]
    if swapped == list(word):  # always change something
        k = next((k for k, c in enumerate(word) if c in table), None)
        if k is not None:
            swapped[k] = table[word[k]]
    return "".join(swapped)


def _case(word: str, rng: np.random.Generator) -> str:
    flippable = {c: c.swapcase() for c in set(word) if len(c.swapcase()) == 1 and c.swapcase() != c}
    return _swap(word, flippable, 0.5, rng)


def _zero_width(word: str, rng: np.random.Generator) -> str:
    if len(word) < 2:
        return word
    gaps = [k for k in range(1, len(word)) if rng.random() < 0.5] or [len(word) // 2]
    out, last = [], 0
    for k in gaps:
        out += [word[last:k], ZERO_WIDTH[int(rng.integers(len(ZERO_WIDTH)))]]
        last = k
    return "".join(out) + word[last:]


def perturb_word(word: str, kind: str, rng: np.random.Generator) -> str:
    """One word disguised by `kind` (unchanged only with nothing to disguise, e.g. "42" in leetspeak)."""
    if not word:
        return word
    if kind == "leetspeak":
        return _swap(word, LEET, 0.7, rng)
    if kind == "spaces":
        return " ".join(word)
    if kind == "punctuation":
        return str(rng.choice(PUNCTUATION)).join(word)
    if kind == "repeats":
        k = int(rng.integers(len(word)))
        return word[:k] + word[k] * int(rng.integers(2, 5)) + word[k:]
    if kind == "homoglyphs":
        return _swap(word, HOMOGLYPHS, 0.5, rng)
    if kind == "zero_width":
        return _zero_width(word, rng)
    if kind == "case":
        return _case(word, rng)
    check_kinds([kind], "kind")
    raise AssertionError(kind)  # unreachable: every kind in KINDS is handled above


def perturb(text: str, kind: str, rng: np.random.Generator, target: str = "all") -> str:
    """`text` with its words of 3+ characters (`target="all"`; the longest word when none is that long) or
    only its longest word (`target="longest"`, the first on ties) disguised by `kind`. Whitespace is kept."""
    check_kinds([kind], "kind")
    if target not in TARGETS:
        raise ModlabError(f"target={target!r} is not a perturbation target; use one of {', '.join(TARGETS)}")
    pieces = _SPACES.split(text)  # words at even positions, the whitespace between them at odd ones
    words = range(0, len(pieces), 2)
    chosen = [j for j in words if len(pieces[j]) >= MIN_WORD] if target == "all" else []
    if not chosen:
        chosen = [max(words, key=lambda j: len(pieces[j]))]
    for j in chosen:
        pieces[j] = perturb_word(pieces[j], kind, rng)
    return "".join(pieces)


def perturb_texts(
    texts: list[str], kind: str, rate: float = 1.0, seed: int = 0, target: str = "all"
) -> tuple[list[str], np.ndarray]:
    """(texts with a `rate` share of them perturbed by `kind`, bool mask of the rows chosen).

    The rows chosen depend only on (seed, rate, len(texts)), so every kind attacks the same rows; the
    perturbations themselves are drawn from (seed, kind).
    """
    check_kinds([kind], "kind")
    if not 0 <= rate <= 1:
        raise ModlabError(f"rate={rate} must be in [0, 1] (the share of texts to perturb)")
    n = len(texts)
    k = int(round(rate * n))
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(seed).choice(n, size=k, replace=False) if k < n else slice(None)] = True
    rng = np.random.default_rng([int(seed), KINDS.index(kind)])
    out = [perturb(t, kind, rng, target) if c else t for t, c in zip(texts, chosen, strict=True)]
    return out, chosen
