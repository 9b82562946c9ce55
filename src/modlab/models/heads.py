"""Pooling heads (config group `head`): turn token states into per-label logits.

Every head sees padding only through `attention_mask`, so padding a text never changes its logits.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualMLP(nn.Module):
    """LayerNorm -> Dense(h,h) -> GELU -> residual add: extra capacity that cannot hurt at init."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm(x)
        return normed + self.act(self.dense(normed))


class PooledHead(nn.Module):
    """pool -> [ResidualMLP] -> Dropout -> Dense(h, num_labels).

    `samples` > 1: multi-sample dropout. In training the logits are the mean over that many dropout masks of
    the same pooled state, a cheap ensemble (the encoder runs once); in eval dropout is off and one pass is all.
    """

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1, mlp: bool = False,
                 samples: int = 1) -> None:
        super().__init__()
        if int(samples) < 1:
            raise ValueError(f"head.samples={samples} must be at least 1 (1: plain dropout)")
        self.mlp = ResidualMLP(hidden_size) if mlp else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)
        self.samples = int(samples)

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        state = self.mlp(self.pool(hidden, attention_mask.to(hidden.dtype)))
        if self.training and self.samples > 1:
            return torch.stack([self.classifier(self.dropout(state)) for _ in range(self.samples)]).mean(dim=0)
        return self.classifier(self.dropout(state))


class ClsHead(PooledHead):
    """The first token's state ([CLS] / <s>)."""

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return hidden[:, 0]


class MeanHead(PooledHead):
    """Mean over real tokens only (what sentence-transformers MiniLM/mpnet were trained with)."""

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        summed = (hidden * mask.unsqueeze(-1)).sum(dim=1)
        return summed / mask.sum(dim=1, keepdim=True).clamp_min(1.0)


class AttentionHead(PooledHead):
    """A learned scalar score per token, softmax over real tokens, weighted sum; then the residual MLP."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1, mlp: bool = True,
                 samples: int = 1) -> None:
        super().__init__(hidden_size, num_labels, dropout, mlp, samples)
        self.score = nn.Linear(hidden_size, 1)

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(hidden).squeeze(-1)
        scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores.float(), dim=-1).to(hidden.dtype)
        return torch.einsum("bt,bth->bh", weights, hidden)
