"""The run-dir contract: every file of a run dir, its name, its read and its atomic write.

train.py writes a run dir, eval.py writes one for each scoring; eval, compare, resume and export read a run
only through `RunDir`, so a file's name and format live here and nowhere else:

  config.yaml          the resolved config of the run (eval: with the checkpoint's backbone/head/loss/labels)
  metrics.json         flat `<split>/<metric>[/<label>]` keys (modlab.evaluation.metrics); NaN as null
  thresholds.json      per-label thresholds tuned on val (modlab.evaluation.thresholds)
  splits.json          {split: [ids]} of the rows each split holds
  predictions.csv      id, text, prob_<label>, label_<label> of the scored split
  gate.json            the quality gate's verdict (modlab.evaluation.gate), when a gate is configured
  report.md, figures/  the human-readable report (modlab.reporting.report)
  .hydra/              Hydra's composed config and group choices (written by Hydra)
  bundle-<precision>/  `modlab export`'s default bundle (modlab.export.bundle)
  checkpoints/         best.ckpt and last.ckpt (Lightning's ModelCheckpoint, conf/callbacks/default.yaml), and
                       refit.ckpt with refit=true (modlab.training.train): the model the run ships when present
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from modlab.errors import ModlabError
from modlab.io import atomic_write_text, write_json

CONFIG = "config.yaml"
METRICS = "metrics.json"
THRESHOLDS = "thresholds.json"
SPLITS = "splits.json"
PREDICTIONS = "predictions.csv"
GATE = "gate.json"
REPORT = "report.md"
FIGURES = "figures"
CHECKPOINTS = "checkpoints"
BEST = "best.ckpt"
LAST = "last.ckpt"
REFIT = "refit.ckpt"
HYDRA = ".hydra"  # Hydra's own copy of the composed config and its choices


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def file(self, name: str) -> Path:
        return self.path / name

    figures_dir = property(lambda self: self.path / FIGURES)
    checkpoints_dir = property(lambda self: self.path / CHECKPOINTS)
    best_checkpoint = property(lambda self: self.path / CHECKPOINTS / BEST)
    last_checkpoint = property(lambda self: self.path / CHECKPOINTS / LAST)
    refit_checkpoint = property(lambda self: self.path / CHECKPOINTS / REFIT)

    @property
    def model_checkpoint(self) -> Path:
        """The checkpoint the run ships: refit.ckpt (trained on train + val) when it has one, else best.ckpt."""
        return self.refit_checkpoint if self.refit_checkpoint.is_file() else self.best_checkpoint

    def is_run(self) -> bool:
        """A finished run (train.py or eval.py wrote its metrics)."""
        return self.file(METRICS).is_file()

    # ---------------------------------------------------------------------------------------------- config
    def write_config(self, cfg: DictConfig | dict) -> Path:
        return atomic_write_text(self.file(CONFIG), OmegaConf.to_yaml(cfg, resolve=True))

    def read_config(self) -> DictConfig | None:
        path = self.file(CONFIG)
        if not path.is_file():
            return None
        try:
            cfg = OmegaConf.load(path)
        except Exception as err:  # noqa: BLE001 - any YAML error is the same mistake for the user
            raise ModlabError(f"{path} is not a readable run config ({' '.join(str(err).split())[:200]}); "
                              f"restore it from the run or pass the settings on the command line") from None
        if not isinstance(cfg, DictConfig):
            raise ModlabError(f"{path} is not a mapping; restore the run's config.yaml")
        return cfg

    def hydra_choices(self) -> dict[str, str]:
        """Hydra's config-group choices of the run (its .hydra/hydra.yaml), {} when unknown or unreadable."""
        path = self.path / HYDRA / "hydra.yaml"
        try:
            saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else {}
        except Exception:  # noqa: BLE001 - a damaged Hydra file only costs the names of the choices
            return {}
        return dict(((saved or {}).get("hydra") or {}).get("runtime", {}).get("choices") or {})

    # --------------------------------------------------------------------------------------------- metrics
    def write_metrics(self, metrics: dict[str, float]) -> Path:
        return write_json(self.file(METRICS), metrics)

    def read_metrics(self) -> dict[str, float]:
        """metrics.json with null read back as NaN."""
        data = self._read_json(METRICS, "is the run still writing it?")
        return {k: math.nan if v is None else v for k, v in data.items()}

    # ---------------------------------------------------------------------------------- thresholds, gate
    def write_thresholds(self, payload: dict) -> Path:
        return write_json(self.file(THRESHOLDS), payload)

    def read_thresholds(self) -> dict | None:
        """The raw thresholds.json payload, or None when the run has none (check it with thresholds.parse)."""
        return self._read_json(THRESHOLDS, "re-run training or pass thresholds_path=null") \
            if self.file(THRESHOLDS).is_file() else None

    def write_gate(self, verdict: dict) -> Path:
        return write_json(self.file(GATE), verdict)

    # --------------------------------------------------------------------------------------------- splits
    def write_splits(self, ids: dict[str, list[str]]) -> Path:
        return write_json(self.file(SPLITS), ids)

    def read_splits(self) -> dict[str, list[str]] | None:
        return self._read_json(SPLITS, "re-run training to write it") if self.file(SPLITS).is_file() else None

    # ---------------------------------------------------------------------------------------- predictions
    def write_predictions(self, ids, texts, probs: np.ndarray, labels: np.ndarray, label_names: list[str]) -> Path:
        import pandas as pd

        frame = pd.DataFrame({"id": list(ids), "text": list(texts)})
        for j, name in enumerate(label_names):
            frame[f"prob_{name}"] = np.round(probs[:, j].astype(np.float64), 6)
        for j, name in enumerate(label_names):
            frame[f"label_{name}"] = labels[:, j]
        return atomic_write_text(self.file(PREDICTIONS), frame.to_csv(index=False))

    def read_predictions(self):
        """predictions.csv without the text column (ids as strings), or None when the run wrote none."""
        import pandas as pd

        path = self.file(PREDICTIONS)
        return pd.read_csv(path, dtype={"id": str}, usecols=lambda c: c != "text") if path.is_file() else None

    # --------------------------------------------------------------------------------------------- report
    def write_report(self, markdown: str) -> Path:
        return atomic_write_text(self.file(REPORT), markdown)

    # -------------------------------------------------------------------------------------------- helpers
    def _read_json(self, name: str, fix: str):
        path = self.file(name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModlabError(f"{path} does not exist; {fix}") from None
        except (ValueError, UnicodeDecodeError) as err:
            raise ModlabError(f"{path} is not valid JSON ({err}); {fix}") from None


def locate(path: str | Path, key: str = "ckpt_path") -> tuple[Path, RunDir | None]:
    """(checkpoint file, its training run or None) from a .ckpt path or a training run dir."""
    p = Path(str(path)).expanduser()
    if p.is_dir():
        run = RunDir(p)
        if not run.model_checkpoint.is_file():
            raise ModlabError(f"{key}={path} is a directory without {CHECKPOINTS}/{BEST}; "
                              f"pass a training run dir or a .ckpt file")
        return run.model_checkpoint, run
    if not p.is_file():
        raise ModlabError(f"{key}={path} does not exist; pass a .ckpt file or a training run dir")
    return p, (RunDir(p.parent.parent) if p.parent.name == CHECKPOINTS else None)
