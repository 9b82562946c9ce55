"""Scoring token ids or raw texts with a trained module: length-sorted batches, each padded to its longest row.

`padded_batches` is the one batching rule of every scorer (robustness, the hard-negative probe, and the
Classifier of `modlab.load`); `predict_proba` runs a module in memory on raw texts, in eval mode under
`torch.inference_mode`, in the module's own dtype and device.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def padded_batches(ids: list[list[int]], pad_id: int, batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
    """(rows, input_ids, attention_mask) per batch, longest rows first: similar lengths, little padding."""
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        longest = int(lengths[rows].max())
        input_ids = np.full((len(rows), longest), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, : lengths[row]] = ids[row]
            mask[i, : lengths[row]] = 1
        yield rows, input_ids, mask


def predict_proba(module, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """(len(texts), labels) float32 probabilities."""
    import torch  # here, not at import: a bundle's Classifier batches with padded_batches and never needs torch

    out = np.zeros((len(texts), len(module.labels)), dtype=np.float32)
    if not texts:
        return out
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            for rows, ids, mask in padded_batches(encoded, tokenizer.pad_token_id or 0, batch_size):
                logits = module(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))
                out[rows] = torch.sigmoid(logits.float()).cpu().numpy()
    finally:
        module.train(was_training)
    return out
