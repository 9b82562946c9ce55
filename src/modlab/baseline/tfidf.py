"""`modlab baseline tfidf`: TF-IDF + one logistic regression per label, as a run dir `modlab compare` lists.

The train config is composed from conf/ with the same overrides train.py takes, and the data is read and
split by the same DataModule (no tokenizer), so the baseline sees exactly a transformer run's rows (folds
included). Features: word 1-2-grams + char_wb 2-5-grams (char n-grams survive the obfuscated spellings of
abuse). Thresholds are tuned on val, val and test scored by `evaluate()`, everything written by `render()`.
With `refit=true` (as train.py's) test is scored by a second fit on train + val, at the thresholds val gave.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from modlab import config_schema
from modlab.errors import ModlabError
from modlab.evaluation import thresholds as thr
from modlab.evaluation.result import Predictions, check_config, combined_metrics, evaluate
from modlab.reporting.run_outputs import render
from modlab.rundir import RunDir

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
NAME = "tfidf-logreg"
# Chosen on the Jigsaw sample's 5 folds by val macro ROC-AUC, paired over the folds (`modlab compare --paired`
# math): balanced class weights beat unweighted fits at C=1 (+0.004 [+0.001, +0.007]) and tie at C=4
# (+0.001 [-0.002, +0.003]); C=4 and C=1 tie with balancing (+0.000 [-0.002, +0.002]), so the balanced fit
# is never worse. The rare labels (identity_hate, threat) gain the most from the balancing.
C = 4.0
CLASS_WEIGHT = "balanced"


def compose_config(overrides: list[str]) -> DictConfig:
    """The train config with train.py-style overrides, and its run dir under paths.log_dir/baseline/runs/."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    runs, stamp = Path(cfg.paths.log_dir) / "baseline" / "runs", time.strftime("%Y-%m-%d_%H-%M-%S")
    run_dir, n = runs / stamp, 1
    while run_dir.exists():  # baselines started within one second (a loop over folds) get their own dirs
        run_dir, n = runs / f"{stamp}_{n}", n + 1
    with open_dict(cfg):
        cfg.task_name = "baseline"
        cfg.paths.output_dir = str(run_dir)  # hydra's runtime dir does not exist outside a Hydra app
    return cfg


def read_splits(cfg: DictConfig, output_dir: str | Path | None):
    """The `data:` DataModule set up without a tokenizer: the table, the rows per split, splits.json written."""
    reader = instantiate(cfg.dataset.reader, _partial_=True)
    dm = instantiate(cfg.data, reader=reader, tokenizer=None,
                     output_dir=None if output_dir is None else str(output_dir))
    dm.setup()
    return dm


def featurizer() -> FeatureUnion:
    return FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, max_features=200_000,
                                 sublinear_tf=True, strip_accents="unicode")),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, max_features=300_000,
                                 sublinear_tf=True, strip_accents="unicode")),
    ])


def fit_predict(train_texts, train_labels: np.ndarray, texts_by_split: dict[str, list[str]],
                c: float = C, class_weight=CLASS_WEIGHT, seed: int = 0) -> dict[str, np.ndarray]:
    """Probabilities per split: one logistic regression per label (one-vs-rest, fitted label by label so
    a row whose label is unknown (-1) is left out of that label only). A label with one class in train
    predicts its constant prior instead of failing."""
    features = featurizer()
    x_train = features.fit_transform(train_texts)
    xs = {split: features.transform(texts) for split, texts in texts_by_split.items()}
    out = {split: np.zeros((x.shape[0], train_labels.shape[1])) for split, x in xs.items()}
    for j in range(train_labels.shape[1]):
        known = train_labels[:, j] >= 0
        y = (train_labels[known, j] >= 0.5).astype(np.int64)
        if len(np.unique(y)) < 2:
            prior = float(y.mean()) if len(y) else 0.0
            log.warning("label %d has one class in the training split: predicting its prior %.3f", j, prior)
            for split in out:
                out[split][:, j] = prior
            continue
        # The dual liblinear problem: far more features than rows, ~14x faster than the primal here.
        model = LogisticRegression(C=c, class_weight=class_weight, max_iter=1000, solver="liblinear", dual=True,
                                   random_state=seed).fit(x_train[known], y)
        for split, x in xs.items():
            out[split][:, j] = model.predict_proba(x)[:, 1]
    return out


def run(overrides: list[str]) -> RunDir:
    """Compose, read + split, fit, tune on val, score val and test, write the run dir; returns it."""
    started = time.perf_counter()
    cfg = compose_config(overrides)
    config_schema.check(cfg)  # the same one-line errors for bad types and ranges as train.py, before any data
    run_dir = RunDir(cfg.paths.output_dir)
    dm = read_splits(cfg, run_dir.path)
    names = list(dm.label_names)
    check_config(cfg, names)
    rows, table = dm.rows, dm.table
    refit, fixed = bool(cfg.get("refit")), cfg.get("refit_epochs") is not None
    splits = [s for s in ("val", "test") if len(rows[s]) and (s == "val" and not (refit and fixed)
                                                             or s == "test" and cfg.get("test", True))]
    if not splits:
        raise ModlabError("the val and test splits are empty; set data.val_size/data.test_size > 0 or data.folds")
    probs, extra = fit_and_score(table, rows, splits, refit, int(cfg.seed))
    tcfg, payload, results = cfg.get("thresholds") or {}, None, []
    for split in splits:
        predictions = Predictions.of_rows(probs[split], table.labels[rows[split]], rows[split], table)
        if split == "val" and tcfg.get("tune", True):
            payload = thr.tune(predictions.probs, predictions.labels, names, tcfg.get("objective", "f1"),
                               tcfg.get("target"), tcfg.get("default", 0.5))
            run_dir.write_thresholds(payload)
        results.append(evaluate(predictions, names, split, thresholds=payload,
                                gate=cfg.get("gate") if split == splits[-1] else None,
                                showcase=int((cfg.get("report") or {}).get("showcase", 5))))
    run_dir.write_config(saved_config(cfg, names))
    render(run_dir, results[-1], combined_metrics(results, extra), report_cfg=cfg.get("report"),
           info={"dataset": table.source, "model": f"{NAME} (C={C:g}, class_weight={CLASS_WEIGHT})"})
    log.info("baseline %s written to %s in %.1fs", NAME, run_dir.path, time.perf_counter() - started)
    return run_dir


def fit_and_score(table, rows: dict[str, np.ndarray], splits: list[str], refit: bool,
                  seed: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Probabilities per split. With refit (as train.py's `refit=true`) val is scored by a fit on train (it
    tunes the thresholds) and test by a second fit on train + val, the model the run stands for."""
    def texts(idx):
        return [table.texts[i] for i in idx]

    if not refit:
        return fit_predict(texts(rows["train"]), table.labels[rows["train"]], {s: texts(rows[s]) for s in splits},
                           seed=seed), {}
    probs = {}
    if "val" in splits:
        probs |= fit_predict(texts(rows["train"]), table.labels[rows["train"]], {"val": texts(rows["val"])},
                             seed=seed)
    both = np.sort(np.concatenate([rows["train"], rows["val"]]))
    if "test" in splits:
        probs |= fit_predict(texts(both), table.labels[both], {"test": texts(rows["test"])}, seed=seed)
    return probs, {"refit/train_rows": float(len(both))}


def saved_config(cfg: DictConfig, labels: list[str]) -> DictConfig:
    """config.yaml: what `modlab compare` and a reader of the run need (no transformer blocks)."""
    keep = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "dataset", "thresholds")}
    return OmegaConf.create({
        "task_name": "baseline", "seed": cfg.seed, "optimized_metric": cfg.optimized_metric,
        "refit": bool(cfg.get("refit")), "refit_epochs": cfg.get("refit_epochs"),
        "monitor": OmegaConf.to_container(cfg.monitor, resolve=True),
        "backbone": {"name": NAME, "C": C, "class_weight": CLASS_WEIGHT,
                     "features": "word 1-2-grams + char_wb 2-5-grams (tf-idf, sublinear)"},
        **keep, "labels": labels})
