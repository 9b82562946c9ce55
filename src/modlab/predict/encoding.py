"""Texts -> token ids exactly as training tokenized them (truncation at max_length, special tokens), and
which texts were truncated.

Two encoders with one interface (`pad_id`, `encode(texts) -> (ids, truncated)`):

- `RunEncoder`: the run's transformers tokenizer, called as modlab.data.tokens calls it (the PyTorch path);
- `BundleEncoder`: the bundle's tokenizer.json in the `tokenizers` library alone, so serving a bundle
  imports neither transformers nor torch (seconds of start-up). Export's parity check feeds the bundle
  through this encoder and the reference through `RunEncoder`, so a difference between them fails the export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modlab.errors import ModlabError

TOKENIZER_FILE = "tokenizer.json"


class RunEncoder:
    def __init__(self, tokenizer, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, int(max_length)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def encode(self, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length, add_special_tokens=True,
                                 return_attention_mask=False, return_token_type_ids=False)
        ids = encoded["input_ids"]
        if encoded.encodings is not None:  # a fast tokenizer records what truncation cut off
            return ids, np.asarray([bool(e.overflowing) for e in encoded.encodings], dtype=bool)
        return ids, np.asarray([len(row) >= self.max_length for row in ids], dtype=bool)


class BundleEncoder:
    def __init__(self, directory: Path, max_length: int, pad_id: int, truncation_side: str = "right") -> None:
        from tokenizers import Tokenizer

        path = Path(directory) / TOKENIZER_FILE
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # noqa: BLE001 - tokenizers raises a bare Exception for a missing or broken file
            raise ModlabError(f"{path} cannot be loaded ({' '.join(str(err).split())[:200]}); export the bundle "
                              f"again with `modlab export <run dir>`") from None
        self.tokenizer.no_padding()  # batches are padded by the Classifier, to their own longest text
        self.tokenizer.enable_truncation(int(max_length), direction=truncation_side)
        self.max_length, self.pad_id = int(max_length), int(pad_id)

    def encode(self, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
        encoded = self.tokenizer.encode_batch(texts, add_special_tokens=True)
        return [e.ids for e in encoded], np.asarray([bool(e.overflowing) for e in encoded], dtype=bool)
