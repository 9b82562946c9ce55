"""Deterministic, learnable synthetic moderation data: label-specific phrases inside benign sentences."""

from __future__ import annotations

import numpy as np

from modlab.data.table import LabeledTable

JIGSAW_LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]

PHRASES: dict[str, list[str]] = {
    "toxic": ["you are pathetic", "shut up", "this is garbage", "get lost loser", "what a stupid take"],
    "severe_toxic": ["i hope you rot", "worthless piece of filth", "die in a fire", "absolute scum of the earth"],
    "obscene": ["f*** this", "damn crap", "holy sh*t", "this b******t", "screw this crap"],
    "threat": ["i will hurt you", "i know where you live", "you will regret this", "watch your back"],
    "insult": ["you idiot", "you moron", "what a clown", "you are an imbecile", "dumb as a rock"],
    "identity_hate": ["go back to your country", "your kind is disgusting", "people like you ruin everything"],
}
BENIGN = [
    "i read the article about {topic} yesterday",
    "can someone explain the section on {topic}",
    "thanks for the edit on the {topic} page",
    "the {topic} discussion needs a better source",
    "i think the {topic} paragraph is fine now",
    "please add a citation for the {topic} claim",
]
TOPICS = ["history", "football", "chemistry", "music", "the election", "gardening", "the bridge", "cooking"]
# Which labels tend to come along when a given one is present (an obscene insult, a toxic threat).
CO_OCCURS = {"severe_toxic": ["toxic"], "threat": ["toxic"], "insult": ["toxic"], "identity_hate": ["toxic"]}


def generate(size: int = 2000, seed: int = 0, labels: list[str] | None = None, positive_rate: float = 0.35) -> LabeledTable:
    """`size` rows; each row is positive for some labels with probability `positive_rate`."""
    labels = list(labels or JIGSAW_LABELS)
    rng = np.random.default_rng(seed)
    y = np.zeros((size, len(labels)), dtype=np.float32)
    texts = []
    for i in range(size):
        parts = [rng.choice(BENIGN).format(topic=rng.choice(TOPICS))]
        if rng.random() < positive_rate:
            chosen = set(rng.choice(labels, size=rng.integers(1, 3), replace=False).tolist())
            chosen |= {c for lab in chosen for c in CO_OCCURS.get(lab, []) if c in labels}
            for lab in chosen:
                y[i, labels.index(lab)] = 1.0
                parts.insert(rng.integers(0, len(parts) + 1), rng.choice(PHRASES.get(lab, [f"{lab} trigger"])))
        texts.append(" ".join(parts))
    return LabeledTable(
        ids=[f"syn-{seed}-{i}" for i in range(size)], texts=texts, labels=y, label_names=labels, source="synthetic"
    )
