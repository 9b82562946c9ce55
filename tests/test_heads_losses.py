"""Heads and losses are exact: padding never changes a head's output; losses match their definitions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modlab.errors import ModlabError
from modlab.models import backbones
from modlab.models.heads import AttentionHead, ClsHead, MeanHead
from modlab.models.losses import BCELoss, FocalLoss, WeightedBCELoss

HEADS = [ClsHead, MeanHead, AttentionHead]


@pytest.mark.parametrize("family", backbones.FAMILIES)
@pytest.mark.parametrize("head_cls", HEADS)
def test_padding_the_same_text_does_not_change_logits(family, head_cls):
    path = backbones.resolve("unused", tiny=True, family=family)
    tokenizer, encoder = backbones.load_tokenizer(path), backbones.load_encoder(path).eval()
    torch.manual_seed(0)
    head = head_cls(encoder.config.hidden_size, 6).eval()
    text = "you are an idiot and i will find you"
    outputs = []
    for length in (16, 40):
        enc = tokenizer([text], padding="max_length", max_length=length, return_tensors="pt")
        with torch.no_grad():
            hidden = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            outputs.append(head(hidden, enc["attention_mask"]))
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)


def test_pooling_definitions():
    hidden = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    torch.testing.assert_close(ClsHead(8, 3).pool(hidden, mask.float()), hidden[:, 0])
    torch.testing.assert_close(MeanHead(8, 3).pool(hidden, mask.float())[0], hidden[0, :3].mean(0))
    att = AttentionHead(8, 3)
    scores = att.score(hidden[0, :3]).squeeze(-1)
    expected = (torch.softmax(scores, 0).unsqueeze(-1) * hidden[0, :3]).sum(0)
    torch.testing.assert_close(att.pool(hidden, mask.float())[0], expected)


def test_attention_head_structure_is_layernorm_dense_gelu_residual():
    head = AttentionHead(8, 3, dropout=0.0).eval()
    x = torch.randn(4, 8)
    normed = head.mlp.norm(x)
    expected = head.classifier(normed + F.gelu(head.mlp.dense(normed)))
    torch.testing.assert_close(head.classifier(head.dropout(head.mlp(x))), expected)


def test_focal_with_gamma_zero_and_no_alpha_equals_bce():
    logits, targets = torch.randn(32, 6) * 5, (torch.rand(32, 6) > 0.7).float()
    torch.testing.assert_close(FocalLoss(gamma=0.0, alpha=None)(logits, targets), BCELoss()(logits, targets))
    torch.testing.assert_close(BCELoss()(logits, targets), F.binary_cross_entropy_with_logits(logits, targets))


def test_focal_is_finite_for_extreme_logits_and_downweights_easy_examples():
    logits = torch.tensor([[80.0, -80.0, 0.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 1.0]])
    loss = FocalLoss(gamma=2.0, alpha=0.25)(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    per = FocalLoss(gamma=2.0, alpha=None).elementwise(torch.tensor([[4.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
    bce = F.binary_cross_entropy_with_logits(torch.tensor([[4.0, 0.0]]), torch.tensor([[1.0, 1.0]]), reduction="none")
    assert per[0, 0] / bce[0, 0] < 0.001 and per[0, 1] / bce[0, 1] == pytest.approx(0.25)


def test_pos_weight_equals_negatives_over_positives_on_training_labels():
    labels = np.array([[1, 0, 0], [0, 0, -1], [1, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float32)
    loss = WeightedBCELoss(num_labels=3).fit(labels, ["a", "b", "c"])
    # a: 2 pos / 3 neg; b: 1 / 4; c: 0 positives -> stays 1 (finite) with a warning.
    torch.testing.assert_close(loss.pos_weight, torch.tensor([1.5, 4.0, 1.0]))
    sqrt = WeightedBCELoss(num_labels=3, transform="sqrt", max_weight=1.9).fit(labels, ["a", "b", "c"])
    torch.testing.assert_close(sqrt.pos_weight, torch.tensor([1.5**0.5, 1.9, 1.0]))
    logits, targets = torch.randn(5, 3), torch.tensor(labels).clamp_min(0)
    expected = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=loss.pos_weight, reduction="none")
    known = torch.tensor(labels) >= 0
    torch.testing.assert_close(loss(logits, torch.tensor(labels)), expected[known].mean())


@pytest.mark.parametrize("loss", [BCELoss(), WeightedBCELoss(num_labels=3), FocalLoss(gamma=2.0, alpha=0.25)])
def test_unknown_labels_get_zero_gradient(loss):
    logits = torch.randn(4, 3, requires_grad=True)
    targets = torch.tensor([[1.0, -1.0, 0.0], [-1.0, -1.0, -1.0], [0.0, 1.0, -1.0], [0.5, 0.0, 1.0]])
    loss(logits, targets).backward()
    assert (logits.grad[targets < 0] == 0).all()
    assert (logits.grad[targets >= 0] != 0).all()


def test_focal_alpha_per_label_weighs_only_the_named_labels():
    logits, targets = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[1.0, 0.0, 1.0]])
    scalar = FocalLoss(num_labels=3, gamma=2.0, alpha=0.25).elementwise(logits, targets)
    mixed = FocalLoss(num_labels=3, gamma=2.0, alpha=0.25, alpha_per_label={"c": 0.9}).fit(np.zeros((1, 3)),
                                                                                           ["a", "b", "c"])
    got = mixed.elementwise(logits, targets)
    assert torch.allclose(got[:, :2], scalar[:, :2])  # a and b keep alpha
    plain = FocalLoss(num_labels=3, gamma=2.0, alpha=None).elementwise(logits, targets)
    assert torch.allclose(got[:, 2], 0.9 * plain[:, 2])  # c: a positive weighed by its own alpha
    with pytest.raises(ModlabError, match="'nope', not labels of this data"):
        FocalLoss(num_labels=3, alpha_per_label={"nope": 0.5}).fit(np.zeros((1, 3)), ["a", "b", "c"])
    with pytest.raises(ModlabError, match=r"alpha_per_label.a=1.5 must be in \[0, 1\]"):
        FocalLoss(num_labels=3, alpha_per_label={"a": 1.5}).fit(np.zeros((1, 3)), ["a", "b", "c"])
