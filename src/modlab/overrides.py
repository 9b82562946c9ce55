"""What the user set on the command line (Hydra's task overrides), so a run's saved config can fill in the rest.

Resume and eval start from the training run's config.yaml; only the keys named here come from the newly
composed config instead.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict


def explicit_keys() -> list[str]:
    """Keys the command line set: `trainer.max_epochs=5` -> 'trainer.max_epochs', `backbone=mpnet` -> 'backbone'."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    keys = []
    for item in HydraConfig.get().overrides.task:
        key = str(item).split("=", 1)[0].lstrip("~+")
        keys.append(key.split("@", 1)[0])
    return keys


def names(keys: list[str], block: str) -> bool:
    """Whether any of `keys` sets `block` or something inside it."""
    return any(k == block or k.startswith(block + ".") for k in keys)


def overlay(base: DictConfig, cfg: DictConfig, keys: list[str], blocks=None) -> DictConfig:
    """`cfg` (resolved) with its top-level blocks replaced by `base`'s (all, or those in `blocks`), then the
    values of `keys` taken from `cfg` again: the saved run's settings, except what the command line set."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    saved = OmegaConf.to_container(OmegaConf.create(base), resolve=True)
    with open_dict(out):
        for block, value in saved.items():
            if blocks is not None and block not in blocks:
                continue
            if block in INLINE_BLOCKS and isinstance(value, dict) and isinstance(out.get(block), DictConfig):
                out[block] = OmegaConf.merge(out[block], value)  # keys added since the run keep their defaults
            else:
                out[block] = value
        for key in keys:
            if blocks is not None and key.split(".", 1)[0] not in blocks:
                continue
            value = OmegaConf.select(cfg, key, default=_ABSENT)
            if value is _ABSENT:
                continue
            if isinstance(value, DictConfig):
                value = OmegaConf.to_container(value, resolve=True)
            OmegaConf.update(out, key, value, merge=False, force_add=True)
    return out


_ABSENT = object()
# Blocks written inline in train.yaml (not config groups): a saved run's values are merged into them.
INLINE_BLOCKS = ("data", "optim", "monitor", "thresholds", "gate", "report", "bias", "robust")
