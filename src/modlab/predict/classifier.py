"""`modlab.load(path)`: one Classifier interface over a bundle (ONNX Runtime), a run dir or a .ckpt (PyTorch).

    clf = modlab.load("outputs/train/runs/<time>")       # or a bundle from `modlab export`, or a .ckpt
    clf.labels, clf.thresholds, clf.backend, clf.precision, clf.device
    clf.predict_proba(["you are great", "..."])         # float32 (n, labels)
    clf.predict(["..."])                                 # [{"scores": {label: p}, "flagged": [labels]}]

Texts are tokenized the way training tokenized them (truncation at the run's data.max_length, special
tokens), sorted by length and cut into batches padded to their own longest text, then put back in order.
Empty texts get scores like any other. Loading reads the weights once and resolves nothing else, so a server
can hold several models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modlab.errors import ModlabError
from modlab.models.inference import padded_batches
from modlab.predict.backends import OnnxBackend, TorchBackend, check_precision
from modlab.predict.encoding import RunEncoder
from modlab.predict.spec import ModelSpec

# Texts tokenized at once inside predict_proba: bounds the token lists held for a very long input list.
TOKENIZE_CHUNK = 8192


@dataclass(frozen=True)
class Scores:
    """Probabilities of a list of texts, and which texts were truncated or empty (for counts and warnings)."""

    probs: np.ndarray
    truncated: np.ndarray
    empty: np.ndarray


class Classifier:
    """`encoder`: modlab.predict.encoding (RunEncoder or BundleEncoder); `backend`: modlab.predict.backends."""

    def __init__(self, spec: ModelSpec, encoder, backend, batch_size: int = 32, source: str = "") -> None:
        if int(batch_size) < 1:
            raise ModlabError(f"batch_size={batch_size} must be at least 1")
        self.spec, self.encoder, self._backend = spec, encoder, backend
        self.batch_size, self.source = int(batch_size), source
        self.pad_id = encoder.pad_id
        self._thresholds = spec.threshold_array()
        # What a caller reads: the labels in output order, {label: threshold}, and which path runs.
        self.labels, self.thresholds, self.max_length = list(spec.labels), dict(spec.thresholds), spec.max_length
        self.backend, self.precision, self.device = backend.name, backend.precision, backend.device

    def describe(self) -> str:
        return f"{self.backend}-{self.precision} on {self.device}"

    def __repr__(self) -> str:
        return f"Classifier({self.source!r}, {self.describe()}, labels={self.labels})"

    # ------------------------------------------------------------------------------------------- scoring
    def _check(self, texts) -> list[str]:
        if isinstance(texts, str):
            return [texts]
        if not hasattr(texts, "__iter__"):
            raise ModlabError(f"texts is a {type(texts).__name__}; pass a list of strings")
        out = []
        for i, text in enumerate(texts):
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise ModlabError(f"texts[{i}] is a {type(text).__name__}, not a string; pass a list of strings")
            out.append(text)
        return out

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        probs = np.empty((len(ids), len(self.spec.labels)), dtype=np.float32)
        for rows, input_ids, mask in padded_batches(ids, self.pad_id, self.batch_size):
            probs[rows] = self._backend(input_ids, mask)
        return probs

    def score(self, texts: Sequence[str]) -> Scores:
        texts = self._check(texts)
        parts, cut = [], []
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            ids, truncated = self.encoder.encode(texts[start : start + TOKENIZE_CHUNK])
            parts.append(self._run(ids))
            cut.append(truncated)
        empty = np.fromiter((not t.strip() for t in texts), dtype=bool, count=len(texts))
        if not parts:
            return Scores(np.zeros((0, len(self.spec.labels)), dtype=np.float32), np.zeros(0, bool), empty)
        return Scores(np.concatenate(parts), np.concatenate(cut), empty)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (n, labels): the probability of each label for each text."""
        return self.score(texts).probs

    def flags(self, probs: np.ndarray) -> np.ndarray:
        """Decisions at the thresholds: positive when p >= threshold (modlab.evaluation.thresholds)."""
        return np.asarray(probs) >= self._thresholds

    def predict(self, texts: Sequence[str]) -> list[dict]:
        """[{"scores": {label: p}, "flagged": [labels at or above their threshold]}] in input order."""
        probs = self.predict_proba(texts)
        return [{"scores": dict(zip(self.labels, map(float, row), strict=True)),
                 "flagged": [n for n, hit in zip(self.labels, hits, strict=True) if hit]}
                for row, hits in zip(probs, self.flags(probs), strict=True)]

def load(path: str | Path, precision: str | None = None, device: str | None = None, threads: int | None = None,
         batch_size: int = 32) -> Classifier:
    """A Classifier from a bundle (ONNX Runtime), a run dir or a .ckpt (PyTorch).

    precision: None picks the fastest path of the device (see modlab.predict.backends); "fp32" forces full
    precision; a bundle runs at the precision it was exported at. threads: torch.set_num_threads (process-wide)
    or the ONNX Runtime session's intra-op threads; None leaves the library default.
    """
    from modlab.export import bundle

    check_precision(precision)
    target = Path(str(path)).expanduser()
    if bundle.is_bundle(target):
        found = bundle.read(target)
        if precision is not None and precision != found.precision:
            raise ModlabError(f"{target} is a {found.precision} bundle, not {precision}; export one with "
                              f"`modlab export <run> --precision {precision}` or leave precision unset")
        backend = OnnxBackend(found.model, found.precision, device=device, threads=threads)
        return Classifier(found.spec, found.encoder(), backend, batch_size, source=str(target))

    from modlab.predict import spec as specs
    from modlab.training import assemble, checkpoints

    ckpt, run = specs.locate_checkpoint(target)
    spec = specs.from_checkpoint(ckpt, run, checkpoints.hparams(ckpt))
    module, backbone = assemble.load_classifier(ckpt)
    backend = TorchBackend(module, device=device, precision=precision, threads=threads)
    return Classifier(spec, RunEncoder(backbone.tokenizer, spec.max_length), backend, batch_size, source=str(target))
