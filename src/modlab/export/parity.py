"""Does the exported graph give the PyTorch module's answers? Checked at export, on the run's held-out rows.

The reference is the checkpoint's module in fp32 on the CPU, fed by the run's tokenizer; the candidate is
the bundle's model.onnx in ONNX Runtime, fed by the bundle's saved tokenizer (so a tokenizer that does not
round-trip shows too). Both see the same texts:

- a run dir: its test split (its splits.json over its dataset, rebuilt through the run's config.yaml), or its
  val split when the test split is empty; at most MAX_ROWS rows, a fixed sample;
- a bare .ckpt, or a run whose dataset cannot be read here: a fixed set of synthetic texts (no labels, so no
  ROC-AUC), and the figures say so.

Tolerances: fp32 max |delta p| <= 1e-4; fp16/int8 macro ROC-AUC delta <= 0.005 and decisions at the
thresholds agreeing on >= 99% of (row, label) pairs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

import numpy as np
from omegaconf import open_dict

from modlab.errors import ModlabError, one_line
from modlab.rundir import SPLITS, RunDir

log = logging.getLogger(__name__)

MAX_ROWS = 2000
SYNTHETIC_ROWS = 256
MAX_ABS_DELTA = 1e-4
AUROC_DELTA = 0.005
AGREEMENT = 0.99


@dataclass(frozen=True)
class Texts:
    texts: list[str]
    labels: np.ndarray | None  # [n, labels] in the model's label order, -1 unknown; None: no labels
    data: str  # what the texts are, for the metadata and the printed line


@dataclass
class Parity:
    precision: str
    data: str
    rows: int
    max_abs_delta: float
    mean_abs_delta: float
    agreement: float
    auroc_reference: float | None
    auroc_bundle: float | None
    auroc_delta: float | None
    tolerances: dict = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)
    forced: bool = False

    @property
    def passed(self) -> bool:
        return not self.misses

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def line(self) -> str:
        auroc = "macro ROC-AUC not checked (no labels)" if self.auroc_delta is None else (
            f"macro ROC-AUC {self.auroc_bundle:.4f} vs {self.auroc_reference:.4f} (delta {self.auroc_delta:.4f})")
        verdict = "pass" if self.passed else f"MISS ({'; '.join(self.misses)})" + (", kept by --force"
                                                                               if self.forced else "")
        return (f"parity {self.precision} vs PyTorch fp32 on {self.data}: max |delta p| {self.max_abs_delta:.2e}, "
                f"{auroc}, decisions agree {100 * self.agreement:.2f}%: {verdict}")


def synthetic_texts(reason: str) -> Texts:
    from modlab.data import synthetic

    texts = list(synthetic.generate(size=SYNTHETIC_ROWS, seed=20240601).texts)
    texts += ["", "   ", "ok " * 400, "ünïcödé 😀 テキスト"]  # empty, blank, truncated, non-ASCII
    return Texts(texts, None, f"{len(texts)} synthetic texts ({reason})")


def held_out_texts(run: RunDir | None, backbone, labels: list[str]) -> Texts:
    """The run's own held-out rows, or synthetic texts when there are none to be had (said in `data`)."""
    if run is None:
        return synthetic_texts("a checkpoint outside a run dir has no held-out split")
    cfg = run.read_config()
    if cfg is None or cfg.get("dataset") is None or not run.file(SPLITS).is_file():
        return synthetic_texts(f"{run.path} has no config.yaml or splits.json to rebuild its held-out split")
    from modlab.training.assemble import build_datamodule

    with open_dict(cfg):
        cfg.data.splits_file = str(run.file(SPLITS))
    try:
        dm = build_datamodule(cfg, backbone, None)
    except ModlabError as err:
        log.warning("the run's dataset cannot be read here, so parity runs on synthetic texts: %s", err)
        return synthetic_texts(f"the run's dataset cannot be read: {one_line(err, 160)}")
    split = "test" if len(dm.rows["test"]) else "val"
    if not len(dm.rows[split]):
        return synthetic_texts(f"{run.path} has empty test and val splits")
    table = dm.split_table(split)
    pick = np.arange(len(table.ids))
    if len(pick) > MAX_ROWS:
        pick = np.sort(np.random.default_rng(0).choice(len(pick), MAX_ROWS, replace=False))
    names = list(table.label_names)
    y = None
    if sorted(names) == sorted(labels):
        y = table.labels[pick][:, [names.index(n) for n in labels]]
    return Texts([table.texts[i] for i in pick], y,
                 f"the {split} split of {run.path} ({len(pick)} of {len(table.ids)} rows)")


def _macro_auroc(probs: np.ndarray, labels: np.ndarray, names: list[str]) -> float:
    from modlab.evaluation.metrics import split_metrics

    return float(split_metrics(probs, labels, names, "parity")["parity/auroc_macro"])


def compare(precision: str, reference: np.ndarray, candidate: np.ndarray, thresholds: np.ndarray,
            texts: Texts, names: list[str]) -> Parity:
    delta = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    agreement = float(((candidate >= thresholds) == (reference >= thresholds)).mean())
    auroc_ref = auroc_new = auroc_delta = None
    if texts.labels is not None:
        auroc_ref, auroc_new = _macro_auroc(reference, texts.labels, names), _macro_auroc(candidate, texts.labels,
                                                                                         names)
        if math.isnan(auroc_ref) or math.isnan(auroc_new):
            auroc_ref = auroc_new = None
        else:
            auroc_delta = abs(auroc_new - auroc_ref)
    misses = []
    if precision == "fp32":
        tolerances = {"max_abs_delta": MAX_ABS_DELTA}
        if not delta.max() <= MAX_ABS_DELTA:
            misses.append(f"max |delta p| {delta.max():.2e} > {MAX_ABS_DELTA:.0e}")
    else:
        tolerances = {"auroc_delta": AUROC_DELTA, "agreement": AGREEMENT}
        if auroc_delta is not None and not auroc_delta <= AUROC_DELTA:
            misses.append(f"macro ROC-AUC delta {auroc_delta:.4f} > {AUROC_DELTA}")
        if not agreement >= AGREEMENT:
            misses.append(f"decision agreement {100 * agreement:.2f}% < {100 * AGREEMENT:.0f}%")
    return Parity(precision=precision, data=texts.data, rows=len(texts.texts), max_abs_delta=float(delta.max()),
                  mean_abs_delta=float(delta.mean()), agreement=agreement, auroc_reference=auroc_ref,
                  auroc_bundle=auroc_new, auroc_delta=auroc_delta, tolerances=tolerances, misses=misses)
