"""Scoring raw texts with a trained module in memory: tokenize, length-sorted batches, dynamic padding.

Used where evaluation needs scores of texts that are not in the DataModule (robustness perturbations, the
hard-negative probe). Runs in eval mode under `torch.inference_mode`, in the module's own dtype and device.
"""

from __future__ import annotations

import numpy as np
import torch


def predict_proba(module, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """(len(texts), labels) float32 probabilities."""
    if not texts:
        return np.zeros((0, len(module.labels)), dtype=np.float32)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    order = np.argsort([len(ids) for ids in encoded], kind="stable")
    out = np.zeros((len(texts), len(module.labels)), dtype=np.float32)
    device = next(module.parameters()).device
    pad = tokenizer.pad_token_id or 0
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                width = max(len(encoded[i]) for i in rows)
                ids = torch.full((len(rows), width), pad, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, i in enumerate(rows):
                    ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
                    mask[r, :len(encoded[i])] = 1
                logits = module(ids.to(device), mask.to(device))
                out[rows] = torch.sigmoid(logits.float()).cpu().numpy()
    finally:
        module.train(was_training)
    return out
