"""Deterministic, learnable synthetic moderation data with the traps real data has.

Each row is a benign sentence with label phrases inserted. On top of that, as in real moderation data:

- label co-occurrence: an insult is often also obscene and toxic (`CO_OCCURS`), sometimes in one phrase
  that carries both labels at once (`COMBOS`: "you f***ing idiot");
- hard negatives: benign text with trigger-like words ("kill the process", "shoot the photo"), no label;
- adversarial perturbations of one label phrase in a `perturb_rate` share of labelled rows: leetspeak,
  inserted spaces or punctuation, repeated characters ("1d10t", "i d i o t", "i.d.i.o.t", "idiiiot"; made by
  `data/perturb.py`); the labels stay;
- optional identity mentions ("as a muslim i see it differently") in an `identity_rate` share of rows,
  more often on labelled rows with `identity_toxic_rate` (a spurious correlation for the bias metrics to
  expose), recorded as 0/1 civil_comments-style identity columns in `table.meta`.

Two taxonomies ship: `jigsaw` (the six Jigsaw labels) and `trust_safety` (18 trust-and-safety categories).
The same seed gives the same rows. `modlab data synth --out FILE` writes them as JSONL (see `jsonl.write`),
which `dataset=jsonl` reads back; `table.meta` says which rows are hard negatives or perturbed
(and which identities a row mentions).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from modlab.data.jigsaw import LABELS as JIGSAW_LABELS
from modlab.data.perturb import perturb
from modlab.data.table import LabeledTable
from modlab.errors import ModlabError

TRUST_SAFETY_LABELS = [
    "threats",
    "hate_speech",
    "harassment",
    "insults",
    "profanity",
    "sexual_content",
    "self_harm",
    "graphic_violence",
    "violent_extremism",
    "spam",
    "scam_patterns",
    "contact_info",
    "personal_data",
    "impersonation",
    "misinformation",
    "drugs",
    "weapons",
    "off_platform",
]
TAXONOMIES = {"jigsaw": JIGSAW_LABELS, "trust_safety": TRUST_SAFETY_LABELS}

PHRASES: dict[str, list[str]] = {
    # jigsaw
    "toxic": [
        "you are pathetic",
        "shut up",
        "this is garbage",
        "get lost loser",
        "what a stupid take",
        "nobody wants you here",
    ],
    "severe_toxic": [
        "i hope you rot",
        "worthless piece of filth",
        "die in a fire",
        "absolute scum of the earth",
    ],
    "obscene": ["f*** this", "damn crap", "holy sh*t", "this b******t", "screw this crap"],
    "threat": [
        "i will hurt you",
        "i know where you live",
        "you will regret this",
        "watch your back",
        "i am going to kill you",
    ],
    "insult": ["you idiot", "you moron", "what a clown", "you are an imbecile", "dumb as a rock"],
    "identity_hate": [
        "go back to your country",
        "your kind is disgusting",
        "people like you ruin everything",
    ],
    # trust and safety
    "threats": [
        "i will find you and hurt you",
        "you better watch your back",
        "i'm going to make you pay",
        "you won't see it coming",
        "i'll break your legs",
    ],
    "hate_speech": [
        "people of your religion are vermin",
        "your race should be wiped out",
        "those people are subhuman",
        "immigrants like you are a disease",
    ],
    "harassment": [
        "i'll keep messaging you until you reply",
        "everyone at school knows what you did",
        "i'm going to post your photos everywhere",
        "answer me right now or else",
        "i'll make your life miserable",
    ],
    "insults": [
        "you absolute idiot",
        "what a pathetic loser",
        "nobody likes you clown",
        "you brainless moron",
    ],
    "profanity": ["what the f***", "this is such bullsh*t", "f*** off", "sh*t show", "damn a** hat"],
    "sexual_content": [
        "send me explicit pics",
        "check my nsfw videos",
        "want to see me naked",
        "looking for a hookup tonight",
    ],
    "self_harm": [
        "i want to hurt myself",
        "i don't want to be alive anymore",
        "i have been cutting again",
        "nobody would miss me if i was gone",
    ],
    "graphic_violence": [
        "the video shows him bleeding out on the street",
        "his skull was smashed open",
        "they filmed the beating until he stopped moving",
    ],
    "violent_extremism": [
        "join the cause and take up arms",
        "glory to the martyrs of the movement",
        "the attack was justified and more must follow",
    ],
    "spam": [
        "buy cheap followers now",
        "click here for free gift cards",
        "earn $500 a day from home",
        "limited offer subscribe to my channel",
        "best deals on replica watches visit my profile",
    ],
    "scam_patterns": [
        "you have won a prize pay the shipping fee to claim it",
        "send me the verification code",
        "your account is locked confirm your password here",
        "i can double your bitcoin in 24 hours",
    ],
    "contact_info": [
        "call me at 555-0143",
        "my number is 415-555-0199",
        "email me at jane.doe84@example.com",
        "text me on 07700 900123",
    ],
    "personal_data": [
        "her home address is 42 elm street",
        "his social security number is 078-05-1120",
        "she lives at 17 oak avenue apartment 3",
        "here is his card 4111 1111 1111 1111",
    ],
    "impersonation": [
        "i am from the official support team verify your account",
        "this is the real ceo account",
        "i'm a moderator give me your login",
    ],
    "misinformation": [
        "the vaccine contains tracking microchips",
        "5g towers spread the virus",
        "drinking bleach cures the flu",
        "the moon landing was staged in a studio",
    ],
    "drugs": [
        "selling molly and xanax dm for prices",
        "got the best weed in town cash only",
        "pills shipped discreetly no prescription needed",
    ],
    "weapons": [
        "selling untraceable ghost guns",
        "unregistered pistols for sale no background check",
        "full auto conversion kits for sale",
    ],
    "off_platform": [
        "add me on telegram for more",
        "let's move this chat to whatsapp",
        "message me on snap it's private there",
        "dm me on kik so the mods can't see",
    ],
}
# One phrase carrying several labels at once, used (half the time) when all of them are chosen.
COMBOS: dict[tuple[str, ...], list[str]] = {
    ("insult", "obscene"): ["you f***ing idiot", "shut your f***ing mouth moron"],
    ("severe_toxic", "obscene"): ["go f*** yourself you worthless filth"],
    ("identity_hate", "insult"): ["your kind are brainless animals"],
    ("insults", "profanity"): ["you f***ing idiot", "shut the f*** up loser"],
    ("threats", "harassment"): ["answer me or i'll come to your house and hurt you"],
    ("hate_speech", "insults"): ["your people are filthy idiots"],
    ("scam_patterns", "contact_info"): ["you won a prize call 555-0175 to pay the fee"],
    ("spam", "contact_info"): ["cheap followers text 555-0112 now"],
    ("sexual_content", "off_platform"): ["add me on snap for my nsfw pics"],
    ("drugs", "off_platform"): ["pills for sale hit me up on telegram"],
    ("personal_data", "harassment"): ["everyone go bother her at 42 elm street"],
}
# label -> [(label that tends to come along, probability)]
CO_OCCURS: dict[str, list[tuple[str, float]]] = {
    "severe_toxic": [("toxic", 1.0), ("obscene", 0.5), ("insult", 0.4)],
    "threat": [("toxic", 0.9)],
    "insult": [("toxic", 0.9), ("obscene", 0.4)],
    "identity_hate": [("toxic", 0.9), ("insult", 0.4)],
    "obscene": [("toxic", 0.8), ("insult", 0.3)],
    "threats": [("harassment", 0.5)],
    "hate_speech": [("insults", 0.4), ("harassment", 0.3)],
    "harassment": [("insults", 0.4)],
    "insults": [("profanity", 0.3)],
    "scam_patterns": [("contact_info", 0.4), ("off_platform", 0.3), ("impersonation", 0.2)],
    "impersonation": [("scam_patterns", 0.4)],
    "spam": [("contact_info", 0.3)],
    "sexual_content": [("off_platform", 0.3)],
    "drugs": [("off_platform", 0.4)],
    "weapons": [("off_platform", 0.2)],
    "personal_data": [("harassment", 0.4)],
    "violent_extremism": [("hate_speech", 0.3)],
}
# Relative frequency of a label as a row's main label (default 1): real data is imbalanced.
WEIGHTS = {
    "toxic": 2.0,
    "severe_toxic": 0.7,
    "threat": 0.7,
    "identity_hate": 0.8,
    "spam": 2.0,
    "insults": 1.5,
    "profanity": 1.5,
    "weapons": 0.7,
    "violent_extremism": 0.7,
    "self_harm": 0.8,
    "impersonation": 0.8,
}
# Benign text with words that look like triggers; no label.
HARD_NEGATIVES = [
    "kill the process and restart the server",
    "shoot the photo before sunset",
    "this bug is killing me",
    "we will attack the problem tomorrow",
    "execute the script again",
    "the bomb scene in the movie was great",
    "i could murder a pizza right now",
    "i'm dying of laughter",
    "that was a killer performance",
    "call the function with two arguments",
    "the scam episode of the podcast was informative",
    "drug awareness week starts monday",
    "the hunting rifle exhibit at the museum",
    "report spam with the flag button",
    "the sex ed curriculum was updated",
    "the dummy variable in the regression",
    "stupid fun game highly recommend",
    "the cockpit of the plane was tiny",
    "scunthorpe united won again",
    "my phone died so message me later",
    "the address bar is hidden in the new browser",
    "add me to the mailing list please",
    "the villain threatens the city in chapter two",
    "free shipping on the order was nice",
]
BENIGN = [
    "i read the article about {topic} yesterday",
    "can someone explain the section on {topic}",
    "thanks for the edit on the {topic} page",
    "the {topic} discussion needs a better source",
    "i think the {topic} paragraph is fine now",
    "please add a citation for the {topic} claim",
    "great stream today loved the {topic} segment",
    "what time does the {topic} meetup start",
    "the new update broke my {topic} settings",
    "does anyone have notes from the {topic} lecture",
    "my order of {topic} supplies never shipped",
    "lol that {topic} meme is so true",
]
TOPICS = [
    "history",
    "football",
    "chemistry",
    "music",
    "election",
    "gardening",
    "bridge",
    "cooking",
    "photography",
    "playoffs",
    "python",
    "phone",
]
# Phrases of these labels carry numbers (phone numbers, addresses) that are drawn afresh for every row.
NUMBERED = {"contact_info", "personal_data"}
# The kinds of `data/perturb.py` used here, in this order: the draws pick from it, so it fixes the rows.
PERTURBATIONS = ("leetspeak", "spaces", "punctuation", "repeats")
# Sentences mentioning an identity (keys: civil_comments identity columns), added by `identity_rate`;
# they carry no label of their own.
IDENTITY_MENTIONS: dict[str, list[str]] = {
    "male": [
        "as a man i see it differently",
        "my brother read it too",
        "speaking as a father of two",
        "the guys at my gym agree",
    ],
    "female": [
        "as a woman i see it differently",
        "my sister read it too",
        "speaking as a mother of two",
        "the women on my team agree",
    ],
    "homosexual_gay_or_lesbian": [
        "my gay friend read it too",
        "as a lesbian i see it differently",
        "speaking as a gay man",
        "my husband and i are both gay",
    ],
    "christian": [
        "as a christian i see it differently",
        "our church group read it too",
        "speaking as a catholic",
        "my christian neighbours agree",
    ],
    "jewish": [
        "as a jew i see it differently",
        "my jewish friend read it too",
        "speaking as a jewish mother",
        "the rabbi at our synagogue agrees",
    ],
    "muslim": [
        "as a muslim i see it differently",
        "my muslim neighbours read it too",
        "speaking as a muslim woman",
        "the imam at our mosque agrees",
    ],
    "black": [
        "as a black man i see it differently",
        "my black coworkers read it too",
        "speaking as a black woman",
        "the black community here agrees",
    ],
    "white": [
        "as a white guy i see it differently",
        "my white neighbours read it too",
        "speaking as a white woman",
        "white people around here agree",
    ],
    "psychiatric_or_mental_illness": [
        "as someone with depression i see it differently",
        "my friend with bipolar disorder read it too",
        "speaking as a schizophrenic",
        "people with mental illness here agree",
    ],
}
# Mentions that also name a second identity, so the columns overlap as annotations do.
ALSO_MENTIONS = {
    "speaking as a gay man": ("male",),
    "as a lesbian i see it differently": ("female",),
    "speaking as a jewish mother": ("female",),
    "speaking as a muslim woman": ("female",),
    "as a black man i see it differently": ("male",),
    "speaking as a black woman": ("female",),
    "as a white guy i see it differently": ("male",),
    "speaking as a white woman": ("female",),
}
IDENTITIES = list(IDENTITY_MENTIONS)


def _numbers(phrase: str, labels: set[str], rng: np.random.Generator) -> str:
    return re.sub(r"\d", lambda _: str(rng.integers(10)), phrase) if labels & NUMBERED else phrase


def _labels_of(taxonomy: str, labels) -> list[str]:
    if taxonomy not in TAXONOMIES:
        raise ModlabError(
            f"dataset.reader.taxonomy={taxonomy!r} is not a synthetic taxonomy; use one of "
            f"{', '.join(TAXONOMIES)}"
        )
    labels = [str(x) for x in labels] if labels else list(TAXONOMIES[taxonomy])
    if len(set(labels)) != len(labels):
        raise ModlabError(f"dataset.reader.labels={labels} repeats a label; list each label once")
    return labels


def _rate(name: str, value: float) -> float:
    if not 0 <= value <= 1:
        raise ModlabError(f"dataset.reader.{name}={value} must be in [0, 1]")
    return float(value)


def _identities_of(identities) -> list[str]:
    identities = [str(x) for x in identities] if identities else list(IDENTITIES)
    unknown = [x for x in identities if x not in IDENTITY_MENTIONS]
    if unknown:
        raise ModlabError(
            f"dataset.reader.identities: {unknown[0]!r} is not a synthetic identity; use any of "
            f"{', '.join(IDENTITIES)}"
        )
    return identities


def _mention_identities(
    rows: list[list[str]], positive: np.ndarray, rate: float, toxic_rate: float | None,
    identities: list[str], seed: int,
) -> pd.DataFrame:
    """Insert an identity mention into a `rate` share of `rows` (in place); the 0/1 identity columns."""
    rng = np.random.default_rng([int(seed), 1])  # its own stream: the rows without mentions stay as they were
    n = len(rows)
    m = int(round(rate * n))
    if toxic_rate is None:
        picked = rng.choice(n, size=m, replace=False)
    else:
        pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
        k = min(int(round(toxic_rate * m)), len(pos))
        picked = np.concatenate([rng.choice(pos, size=k, replace=False),
                                 rng.choice(neg, size=min(m - k, len(neg)), replace=False)])
    columns = {name: np.zeros(n) for name in IDENTITIES}
    for i in np.sort(picked):
        identity = str(rng.choice(identities))
        mention = str(rng.choice(IDENTITY_MENTIONS[identity]))
        rows[i].insert(int(rng.integers(0, len(rows[i]) + 1)), mention)
        for name in (identity, *ALSO_MENTIONS.get(mention, ())):
            columns[name][i] = 1.0
    return pd.DataFrame(columns)


def generate(
    size: int = 2000,
    seed: int = 0,
    labels: list[str] | None = None,
    positive_rate: float = 0.35,
    taxonomy: str = "jigsaw",
    hard_negative_rate: float = 0.1,
    perturb_rate: float = 0.1,
    identity_rate: float = 0.0,
    identity_toxic_rate: float | None = None,
    identities: list[str] | None = None,
) -> LabeledTable:
    """`size` rows; a row is positive for 1-2 labels (plus co-occurring ones) with probability `positive_rate`.

    `labels` picks a subset of the taxonomy; a name outside it gets generic phrases ("<name> trigger").
    `identity_rate` adds an identity mention ("as a muslim i see it differently") to that share of rows,
    picked from `identities` (default: all of `IDENTITIES`), and `table.meta` gains one 0/1 column per
    identity (named like the civil_comments columns). `identity_toxic_rate` is the share of those rows that
    have a label (as far as the rows allow): above the data's positive share it is a spurious correlation a
    model can learn; None places mentions regardless of labels. The other rows and draws stay as without
    mentions (they come from their own random stream).
    """
    if int(size) < 1:
        raise ModlabError(f"dataset.reader.size={size} must be at least 1")
    labels = _labels_of(taxonomy, labels)
    positive_rate, hard_negative_rate = (
        _rate("positive_rate", positive_rate),
        _rate("hard_negative_rate", hard_negative_rate),
    )
    perturb_rate = _rate("perturb_rate", perturb_rate)
    identity_rate = _rate("identity_rate", identity_rate)
    if identity_toxic_rate is not None:
        identity_toxic_rate = _rate("identity_toxic_rate", identity_toxic_rate)
    identities = _identities_of(identities)
    rng = np.random.default_rng(seed)
    weights = np.array([WEIGHTS.get(lab, 1.0) for lab in labels])
    weights /= weights.sum()
    column = {lab: j for j, lab in enumerate(labels)}
    combos = [(set(c), p) for c, p in COMBOS.items() if set(c) <= set(labels)]
    y = np.zeros((int(size), len(labels)), dtype=np.float32)
    rows, kinds, perturbations = [], [], []
    for i in range(int(size)):
        chosen: set[str] = set()
        if rng.random() < positive_rate:
            k = min(len(labels), 1 if rng.random() < 0.7 else 2)
            chosen = set(rng.choice(labels, size=k, replace=False, p=weights).tolist())
            for lab in sorted(chosen, key=column.get):
                chosen |= {
                    other for other, p in CO_OCCURS.get(lab, []) if other in column and rng.random() < p
                }
        spans, left = [], set(chosen)
        for combo, phrases in combos:
            if combo <= left and rng.random() < 0.5:
                spans.append(_numbers(str(rng.choice(phrases)), combo, rng))
                left -= combo
        for lab in sorted(left, key=column.get):
            spans.append(_numbers(str(rng.choice(PHRASES.get(lab, [f"{lab} trigger"]))), {lab}, rng))
        kind, how = ("positive" if chosen else "benign"), ""
        if spans and rng.random() < perturb_rate:
            how = str(rng.choice(PERTURBATIONS))
            j = int(rng.integers(len(spans)))
            spans[j] = perturb(spans[j], how, rng, target="longest")
        if rng.random() < hard_negative_rate:
            spans.append(str(rng.choice(HARD_NEGATIVES)))
            kind = kind if chosen else "hard_negative"
        parts = [str(rng.choice(BENIGN)).format(topic=rng.choice(TOPICS))]
        if len(spans) <= 1 and rng.random() < 0.2:
            parts.append(str(rng.choice(BENIGN)).format(topic=rng.choice(TOPICS)))
        for span in spans:
            parts.insert(int(rng.integers(0, len(parts) + 1)), span)
        for lab in chosen:
            y[i, column[lab]] = 1.0
        rows.append(parts)
        kinds.append(kind)
        perturbations.append(how)
    meta = pd.DataFrame({"kind": kinds, "perturbation": perturbations})
    if identity_rate > 0:
        mentioned = _mention_identities(
            rows, y.any(axis=1), identity_rate, identity_toxic_rate, identities, seed
        )
        meta = pd.concat([meta, mentioned], axis=1)
    return LabeledTable(
        ids=[f"syn-{seed}-{i}" for i in range(int(size))],
        texts=[" ".join(parts) for parts in rows],
        labels=y,
        label_names=labels,
        meta=meta,
        source=f"synthetic(taxonomy={taxonomy}, seed={seed}, size={size})",
    )
