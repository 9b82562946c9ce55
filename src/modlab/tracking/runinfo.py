"""What a run is called: backbone/head/loss/dataset names, W&B group, name and tags.

Hydra's choices (`hydra.runtime.choices`, or a run dir's .hydra/hydra.yaml) when known, else names derived
from the resolved config. Light on imports: `modlab compare` uses it without torch or Lightning.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CHOICE_GROUPS = ("backbone", "head", "loss", "dataset")


def _snake(name: str, suffix: str) -> str:
    name = name.rsplit(".", 1)[-1].removesuffix(suffix)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def choices_from_config(cfg) -> dict[str, str | None]:
    """backbone/head/loss/dataset names derived from a resolved config (when Hydra's choices are unknown)."""
    backbone = _get(cfg, "backbone", "name")
    if backbone:
        backbone = str(backbone).rstrip("/").rsplit("/", 1)[-1]
    head, loss = _get(cfg, "head", "_target_"), _get(cfg, "loss", "_target_")
    return {"backbone": backbone, "head": head and _snake(head, "Head"), "loss": loss and _snake(loss, "Loss"),
            "dataset": _get(cfg, "dataset", "name")}


def _get(cfg, *keys):
    """cfg[k1][k2]... of a DictConfig or a plain dict; None where a key is missing."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.select(cfg, ".".join(keys))
    for key in keys:
        if not isinstance(cfg, dict) or key not in cfg:
            return None
        cfg = cfg[key]
    return cfg


def merge_choices(hydra_choices, cfg) -> dict[str, str | None]:
    """Hydra's choice names where known, else names derived from the config; a tiny (random-init) backbone
    is marked `-tiny` so its runs never pass for the real model's."""
    derived = choices_from_config(cfg) if cfg is not None else dict.fromkeys(CHOICE_GROUPS)
    out = {g: (hydra_choices or {}).get(g) or derived.get(g) for g in CHOICE_GROUPS}
    if _get(cfg, "backbone", "tiny") and out["backbone"] and not str(out["backbone"]).endswith("-tiny"):
        out["backbone"] = f"{out['backbone']}-tiny"
    return out


def run_choices(cfg: DictConfig | None) -> dict[str, str | None]:
    """The Hydra choices of backbone/head/loss/dataset when Hydra is running, else derived from `cfg`."""
    from hydra.core.hydra_config import HydraConfig

    return merge_choices(HydraConfig.get().runtime.choices if HydraConfig.initialized() else None, cfg)


def _multirun() -> tuple[bool, str | None, int | None]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return False, None, None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return False, None, None
    sweep = OmegaConf.select(hc, "sweep.dir")
    return True, f"{hc.job.get('name') or 'run'}-{Path(str(sweep)).name}" if sweep else None, hc.job.get("num")


def run_identity(run_cfg: DictConfig | None, group: str | None, name: str | None, tags) -> tuple:
    """(group, name, tags): the study name (or the multirun) as group, choices as tags."""
    choices = run_choices(run_cfg)
    is_multi, sweep_group, num = _multirun()
    group = group or sweep_group
    if not name:
        name = "-".join(str(choices[g]) for g in ("backbone", "head", "loss") if choices.get(g)) or None
        trial = OmegaConf.select(run_cfg, "optuna.trial_number") if run_cfg is not None else None
        if name and (trial is not None or is_multi):
            name += f"-{trial if trial is not None else num}"
    tags = [str(t) for t in (tags or [])] + [f"{g}:{v}" for g, v in choices.items() if v]
    return group, name, list(dict.fromkeys(t[:64] for t in tags))
