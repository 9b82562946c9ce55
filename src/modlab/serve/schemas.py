"""The API's request and response shapes, and the limits a request is held to.

`/v1/moderations` follows the widely used moderation shape (`{"input": str | [str], "model": name}` ->
`{"id", "model", "results": [{"flagged", "categories", "category_scores"}]}`), so a client written for it
works unchanged; fields it may send that modlab does not use are ignored. Errors are `{"error": {"message",
"type", "param", "code"}}` in the same family's style.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20  # 413 above
    max_inputs: int = 256  # texts per request, 422 above
    max_chars: int = 20_000  # characters per text, 422 above (the model reads max_length tokens anyway)


class RequestFailed(Exception):
    """A request the server refuses: HTTP status, one-line message, the offending field."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


class ModerationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: str | list[str]
    model: str | None = None


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: str | list[str]
    models: list[str] | None = None


class ModerationResult(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]


class ModerationResponse(BaseModel):
    id: str
    model: str
    results: list[ModerationResult]


class ModelComparison(BaseModel):
    model: str
    latency_ms: float  # from the request reaching this model's queue to its scores
    results: list[ModerationResult]


class CompareResponse(BaseModel):
    id: str
    models: list[ModelComparison]


def texts_of(value: str | list[str], limits: Limits) -> list[str]:
    """The request's texts, or a 422 naming the limit it breaks."""
    texts = [value] if isinstance(value, str) else list(value)
    if not texts:
        raise RequestFailed(422, "input is an empty list; send a string or a list of 1 or more strings", "input")
    if len(texts) > limits.max_inputs:
        raise RequestFailed(422, f"input has {len(texts)} texts; the limit is {limits.max_inputs} per request "
                                 f"(--max-inputs): split it into several requests", "input", "too_many_inputs")
    for i, text in enumerate(texts):
        where = "input" if isinstance(value, str) else f"input[{i}]"
        if len(text) > limits.max_chars:
            raise RequestFailed(422, f"{where} has {len(text):,} characters; the limit is {limits.max_chars:,} "
                                     f"(--max-chars): shorten it", where, "input_too_long")
        bad = SURROGATE.search(text)  # JSON can escape one ("\ud800"); no tokenizer takes it
        if bad:
            raise RequestFailed(422, f"{where} holds an unpaired UTF-16 surrogate (\\u{ord(bad[0]):x}); send valid "
                                     f"Unicode text", where, "invalid_text")
    return texts


def results(labels: list[str], probs, flags) -> list[ModerationResult]:
    return [ModerationResult(flagged=bool(hits.any()),
                             categories={n: bool(h) for n, h in zip(labels, hits, strict=True)},
                             category_scores={n: float(p) for n, p in zip(labels, row, strict=True)})
            for row, hits in zip(probs, flags, strict=True)]
