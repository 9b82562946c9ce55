"""The one LightningModule: encoder + pooling head + loss + per-label metrics + optimizer."""

from __future__ import annotations

import inspect

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from transformers import get_scheduler

from modlab.errors import ModlabError
from modlab.evaluation.metrics import PredictionStore, split_metrics
from modlab.models import backbones

# Optimizer of checkpoints written before `optim.optimizer` existed (a `_partial_` config since then).
DEFAULT_OPTIMIZER = {"_target_": "torch.optim.AdamW", "_partial_": True}


def _plain(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


class ModerationClassifier(L.LightningModule):
    """Built from plain config dicts, kept in the checkpoint as its hyperparameters (no pickled objects).

    Runtime dependencies come from `modlab.training.assemble`: `labels` from the data and `backbone_dir`, the
    backbone resolved once for tokenizer and weights (resolved here only when not given).
    """

    def __init__(self, backbone: dict, head: dict, loss: dict, optim: dict, labels: list[str],
                 backbone_dir: str | None = None) -> None:
        super().__init__()
        backbone, head, loss, optim = (_plain(c) for c in (backbone, head, loss, optim))
        self.save_hyperparameters({"backbone": backbone, "head": head, "loss": loss, "optim": optim,
                                   "labels": list(labels)})
        self.labels, self.optim = list(labels), optim
        self.encoder = backbones.load_encoder(backbone_dir or backbones.resolve_config(backbone),
                                              backbone.get("dropout"))
        reinit = int(backbone.get("reinit_layers") or 0)
        backbones.reinit_top_layers(self.encoder, reinit)
        backbones.freeze_bottom_layers(self.encoder, int(backbone.get("freeze_layers") or 0), reinit)
        self.head = instantiate(head, hidden_size=self.encoder.config.hidden_size, num_labels=len(labels))
        self.criterion = instantiate(loss, num_labels=len(labels))
        # The last val/test epoch's probabilities, labels and table rows (thresholds, report, curves).
        self.predictions = torch.nn.ModuleDict({s: PredictionStore() for s in ("val", "test")})
        self.collected: dict[str, dict] = {}

    def setup(self, stage: str) -> None:
        """The loss's training-split statistics (pos_weight), from the DataModule being fitted."""
        if stage == "fit" and self.trainer.datamodule is not None:
            self.criterion.fit(self.trainer.datamodule.train_labels, self.labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(hidden, attention_mask)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.criterion(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {self.global_step}; lower optim.lr or use trainer.precision=32"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.optim.get("log_grad_norm"):  # the total 2-norm of the (unscaled) gradients, when asked
            from lightning.pytorch.utilities import grad_norm

            norms = grad_norm(self, norm_type=2)
            if norms:
                self.log("train/grad_norm", norms["grad_2.0_norm_total"])

    def _eval_step(self, batch: dict, split: str) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.log(f"{split}/loss", self.criterion(logits, batch["labels"]), batch_size=len(logits), sync_dist=True)
        self.predictions[split].update(torch.sigmoid(logits.float()), batch["labels"], batch["rows"])

    def _eval_epoch_end(self, split: str) -> None:
        """Every rank gets the same gathered, de-duplicated predictions and computes the same values."""
        self.collected[split] = collected = self.predictions[split].compute()
        self.predictions[split].reset()
        if not collected:  # no eval batches (e.g. limit_val_batches=0)
            return
        values = split_metrics(collected["probs"], collected["labels"], self.labels, split)
        macro = f"{split}/auroc_macro"
        self.log_dict({k: v for k, v in values.items() if k != macro})
        self.log(macro, values[macro], prog_bar=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def encoder_lrs(self) -> dict[str, float]:
        """Each encoder parameter's learning rate: `optim.lr`, or with `optim.layer_decay` = d (layer-wise
        decay) lr * d^(L-1-i) for block i of L and lr * d^L for the embeddings, so the lower, more general
        layers move least. Parameters outside the blocks and embeddings (shared attention bias) get lr."""
        o, lrs = self.optim, {}
        decay = o.get("layer_decay")
        layers = self.encoder.config.num_hidden_layers
        for name, p in self.encoder.named_parameters():
            if not p.requires_grad:
                continue
            index = backbones.layer_of(name)
            depth = layers - 1 - index if index is not None else (layers if "embeddings" in name else 0)
            lrs[name] = o["lr"] * (decay**depth if decay else 1.0)
        return lrs

    def optimizer_config(self) -> dict:
        """`optim.optimizer` with `fused: auto` resolved: the fused kernel (one pass over all parameters, 1.09x the
        bf16 training step on a CPU; EXPERIMENTS.md, "What closes the gap") except under fp16 loss scaling, where
        the fused step unscales the gradients itself and Lightning could no longer clip them."""
        spec = dict(self.optim.get("optimizer") or DEFAULT_OPTIMIZER)
        if spec.get("fused") == "auto":
            spec["fused"] = str(self.trainer.precision) not in ("16-mixed", "16", "16-true")
            if "fused" not in inspect.signature(get_class(spec["_target_"])).parameters:
                del spec["fused"]  # another optimizer without a fused kernel: auto means none
        elif spec.get("fused") not in (None, True, False):
            raise ModlabError(f"optim.optimizer.fused={spec['fused']!r} is not auto, true or false; "
                              f"use auto (the fused step where it is safe)")
        return spec

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Lightning's mixed-precision plugin refuses to clip for a fused optimizer, whose step would unscale fp16
        gradients itself; under bf16 there is no loss scaling, so the gradients are clipped here as they are."""
        fused = getattr(optimizer, "_step_supports_amp_scaling", False)
        if not (gradient_clip_val and fused and str(self.trainer.precision).startswith("bf16")):
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:  # Lightning's default algorithm, "norm"
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    def configure_optimizers(self):
        """`optim.optimizer` (AdamW): encoder/head learning rates (layer-wise decay with `optim.layer_decay`), no
        weight decay on biases and norms; warmup then decay."""
        o = self.optim
        groups, lrs = [], self.encoder_lrs()
        params = dict(self.encoder.named_parameters())
        for lr in sorted(set(lrs.values())):
            same = [params[n] for n, v in lrs.items() if v == lr]
            groups.append({"params": [p for p in same if p.ndim >= 2], "lr": lr, "weight_decay": o["weight_decay"]})
            groups.append({"params": [p for p in same if p.ndim < 2], "lr": lr, "weight_decay": 0.0})
        head = [p for p in self.head.parameters() if p.requires_grad]
        head_lr = o.get("head_lr") or o["lr"]
        groups.append({"params": [p for p in head if p.ndim >= 2], "lr": head_lr, "weight_decay": o["weight_decay"]})
        groups.append({"params": [p for p in head if p.ndim < 2], "lr": head_lr, "weight_decay": 0.0})
        make_optimizer = instantiate(self.optimizer_config())
        optimizer = make_optimizer([g for g in groups if g["params"]])
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = o.get("warmup_steps") or int(o.get("warmup_ratio", 0.0) * total)
        scheduler = get_scheduler(o.get("scheduler", "linear"), optimizer, num_warmup_steps=min(warmup, total),
                                  num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
