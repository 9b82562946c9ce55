"""Multi-label losses (config group `loss`). Targets of -1 are unknown and contribute nothing.

Targets may be soft (civil_comments rater fractions); every loss takes values in [0, 1].
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modlab.errors import ModlabError

log = logging.getLogger(__name__)


class MaskedMultiLabelLoss(nn.Module):
    """Mean of the per-element loss over known targets (target >= 0)."""

    def __init__(self, num_labels: int | None = None) -> None:
        super().__init__()

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, train_labels: np.ndarray, label_names: list[str]) -> MaskedMultiLabelLoss:
        """Hook for losses that need training-split statistics; a no-op by default."""
        return self

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        known = targets >= 0
        per_element = self.elementwise(logits.float(), torch.where(known, targets, 0).float())
        per_element = torch.where(known, per_element, torch.zeros_like(per_element))
        return per_element.sum() / known.sum().clamp_min(1)


class BCELoss(MaskedMultiLabelLoss):
    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


class WeightedBCELoss(MaskedMultiLabelLoss):
    """BCE with pos_weight = negatives / positives per label, counted on the training split.

    `transform`: "none", "sqrt" (softer) ; `max_weight` clips the weight of very rare labels.
    A label with zero positives gets weight 1 (and a warning): there is nothing to up-weight.
    """

    def __init__(self, num_labels: int, transform: str = "none", max_weight: float | None = None) -> None:
        super().__init__(num_labels)
        if transform not in ("none", "sqrt"):
            raise ValueError(f"loss.transform must be 'none' or 'sqrt', got {transform!r}")
        self.transform, self.max_weight = transform, max_weight
        self.register_buffer("pos_weight", torch.ones(num_labels))

    def fit(self, train_labels: np.ndarray, label_names: list[str]) -> WeightedBCELoss:
        labels = np.asarray(train_labels, dtype=np.float64)
        known = labels >= 0
        pos = np.where(known, labels, 0).sum(axis=0)
        neg = np.where(known, 1 - labels, 0).sum(axis=0)
        weight = np.ones_like(pos)
        for j, name in enumerate(label_names):
            if pos[j] == 0:
                log.warning("label %r has no positives in the training split; its pos_weight stays 1", name)
            else:
                weight[j] = neg[j] / pos[j]
        if self.transform == "sqrt":
            weight = np.sqrt(weight)
        if self.max_weight is not None:
            weight = np.minimum(weight, self.max_weight)
        self.pos_weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        return self

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight, reduction="none")


class FocalLoss(MaskedMultiLabelLoss):
    """Focal loss (Lin et al. 2017) from logits: BCE * (1 - p_t)^gamma, optionally alpha-balanced.

    `alpha` weighs positives by alpha and negatives by 1 - alpha for every label (None: no weighting);
    `alpha_per_label` ({label: alpha}) sets it per label, the rest keep `alpha`: a rare label can get a larger
    alpha than a common one. The BCE term uses the log-sum-exp form, so large logits never produce inf/NaN.
    """

    def __init__(self, num_labels: int | None = None, gamma: float = 2.0, alpha: float | None = 0.25,
                 alpha_per_label: dict | None = None) -> None:
        super().__init__(num_labels)
        self.gamma, self.alpha = gamma, alpha
        self.alpha_per_label = dict(alpha_per_label or {})
        # Per-label weights of positives and negatives; built from the label names in fit() (not saved: the
        # config rebuilds them), so without per-label values the loss is exactly the scalar-alpha one.
        self.register_buffer("weights", torch.empty(0), persistent=False)

    def fit(self, train_labels: np.ndarray, label_names: list[str]) -> FocalLoss:
        if not self.alpha_per_label:
            return self
        unknown = sorted(set(self.alpha_per_label) - set(label_names))
        if unknown:
            raise ModlabError(f"loss.alpha_per_label names {', '.join(map(repr, unknown))}, not labels of this data "
                              f"({', '.join(label_names)}); fix the names")
        pos, neg = [], []
        for name in label_names:
            a = self.alpha_per_label.get(name, self.alpha)
            if a is not None and not 0 <= float(a) <= 1:
                raise ModlabError(f"loss.alpha_per_label.{name}={a} must be in [0, 1]")
            pos.append(1.0 if a is None else float(a))
            neg.append(1.0 if a is None else 1 - float(a))
        self.weights = torch.tensor([pos, neg], dtype=torch.float32, device=self.weights.device)
        return self

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = bce * (1 - p_t).clamp_min(0) ** self.gamma if self.gamma else bce
        if self.weights.numel():
            return (self.weights[0] * targets + self.weights[1] * (1 - targets)) * loss
        if self.alpha is not None:
            loss = (self.alpha * targets + (1 - self.alpha) * (1 - targets)) * loss
        return loss
