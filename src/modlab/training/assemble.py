"""Assemble once: (backbone dir, tokenizer, DataModule, LightningModule) from a config.

The one place runtime dependencies are handed to components: the backbone is resolved exactly once and
its directory and tokenizer go to both the DataModule (`data:` block, a `_target_`) and the module
(`model:` block, a `_target_`); label names come from the data. train.py, eval.py, the benchmarks and
export all build through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from modlab.data.datamodule import ModerationDataModule
from modlab.errors import ModlabError
from modlab.models import backbones
from modlab.models.module import ModerationClassifier
from modlab.training import checkpoints


@dataclass(frozen=True)
class Backbone:
    """A resolved backbone: the directory its config, weights and tokenizer load from."""

    path: str
    tokenizer: object
    positions: int

    @classmethod
    def resolve(cls, cfg) -> Backbone:
        path = backbones.resolve_config(cfg)
        return cls(path=path, tokenizer=backbones.load_tokenizer(path), positions=backbones.max_positions(path))

    def check_max_length(self, max_length: int, name: str) -> None:
        if max_length > self.positions:
            raise ModlabError(f"data.max_length={max_length} exceeds {name}'s {self.positions} positions; "
                              f"set data.max_length<={self.positions}")


@dataclass(frozen=True)
class Assembly:
    backbone: Backbone
    datamodule: ModerationDataModule
    module: ModerationClassifier | None

    @property
    def tokenizer(self):
        return self.backbone.tokenizer


def build_datamodule(cfg: DictConfig, backbone: Backbone, output_dir: str | Path | None,
                     reader=None) -> ModerationDataModule:
    """cfg.data instantiated with the tokenizer and the dataset reader; read + split + tokenized now."""
    backbone.check_max_length(cfg.data.max_length, cfg.backbone.name)
    reader = reader if reader is not None else instantiate(cfg.dataset.reader, _partial_=True)
    dm = instantiate(cfg.data, reader=reader, tokenizer=backbone.tokenizer,
                     output_dir=None if output_dir is None else str(output_dir))
    dm.setup()
    return dm


def build_module(cfg: DictConfig, backbone: Backbone, labels: list[str]) -> ModerationClassifier:
    blocks = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("backbone", "head", "loss", "optim")}
    try:
        return instantiate(cfg.model, **blocks, labels=list(labels), backbone_dir=backbone.path, _recursive_=False)
    except InstantiationException as err:  # Hydra wraps what the module raises; a ModlabError stays one line
        if isinstance(err.__cause__, ModlabError):
            raise err.__cause__ from None
        raise


def build(cfg: DictConfig, output_dir: str | Path | None, reader=None, with_module: bool = True) -> Assembly:
    """Everything a run needs, from a train config (backbone, dataset, data, model blocks)."""
    backbone = Backbone.resolve(cfg.backbone)
    dm = build_datamodule(cfg, backbone, output_dir, reader)
    module = build_module(cfg, backbone, dm.label_names) if with_module else None
    return Assembly(backbone, dm, module)


def load_classifier(ckpt_path: str | Path, backbone: Backbone | None = None,
                    hp: dict | None = None) -> tuple[ModerationClassifier, Backbone]:
    """A trained module from a checkpoint (weights_only reading), in eval mode, with its resolved backbone.

    A caller that already resolved the checkpoint's backbone (and read its hyperparameters) passes them, so
    neither is done twice."""
    hp = hp if hp is not None else checkpoints.hparams(ckpt_path)
    backbone = backbone if backbone is not None else Backbone.resolve(hp["backbone"])
    module = ModerationClassifier(hp["backbone"], hp["head"], hp["loss"], hp.get("optim") or {}, hp["labels"],
                                  backbone_dir=backbone.path)
    checkpoints.load_state(module, ckpt_path)
    return module.eval(), backbone


def model_blocks(hp: dict) -> DictConfig:
    """The backbone/head/loss blocks and label names a checkpoint was trained with, as config."""
    return OmegaConf.create({k: hp[k] for k in ("backbone", "head", "loss", "labels")})
