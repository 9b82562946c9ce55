"""Experiment loggers (config group `logger`): CSV, TensorBoard and a W&B logger that never breaks a run.

W&B (`logger=wandb`, which keeps the CSV logger too):
- mode: `logger.wandb.mode`, else WANDB_MODE, else online with an API key (WANDB_API_KEY or `wandb login`'s
  netrc entry) and offline without one; one log line says which. Offline runs live in
  `<run dir>/wandb/offline-run-*` for a later `wandb sync`.
- any W&B failure (init, a log call, finish) becomes one warning; an online init that fails falls back to
  offline, and finishing waits at most `finish_timeout` seconds.
- tags from the Hydra choices of backbone/head/loss/dataset; group = the Optuna study (or the multirun);
  each job is its own run, finished at the end of the job.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from modlab.errors import one_line
from modlab.tracking.runinfo import run_identity

log = logging.getLogger(__name__)


def instantiate_loggers(cfg: DictConfig | None, run_cfg: DictConfig | None = None) -> list[Logger]:
    """Each entry of the `logger` group with a `_target_` becomes a Lightning logger (W&B: started now)."""
    if not cfg:
        return []
    loggers = []
    for entry in cfg.values():
        if not (isinstance(entry, DictConfig) and "_target_" in entry):
            continue
        logger = instantiate(entry)
        if isinstance(logger, SafeWandbLogger):
            logger = logger.start(run_cfg)
        if logger is not None:
            loggers.append(logger)
    return loggers


# ------------------------------------------------------------------------------------------------------ W&B

def has_api_key() -> bool:
    """Whether W&B credentials are configured locally (never asks the network)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        from wandb.sdk.lib.wbauth import wbnetrc

        return bool(wbnetrc.read_netrc_auth(host=os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")))
    except Exception:  # an unreadable netrc or a changed wandb internals: treat as no key
        return False


def server_url() -> str:
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").rstrip("/")


def server_answers(timeout: float) -> bool:
    """Whether the W&B server gives any HTTP answer within `timeout` seconds.

    wandb.init's own `init_timeout` does not bound the whole start (a server that accepts connections and
    never answers held a run for ~41 s with init_timeout 30); this probe does, and then init goes offline.
    """
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(server_url() + "/healthz", timeout=timeout).close()
    except urllib.error.HTTPError:
        return True  # it answered, with an error status: it is there
    except (OSError, ValueError):
        return False
    return True


class SafeWandbLogger(WandbLogger):
    """Lightning's WandbLogger, started eagerly, whose failures are warnings instead of crashes."""

    def __init__(self, *, mode: str | None = None, init_timeout: float = 30.0, finish_timeout: float = 60.0,
                 monitor: str | None = None, monitor_mode: str = "max", settings: dict | None = None,
                 tags=None, group: str | None = None, name: str | None = None, **kwargs: Any) -> None:
        settings = dict(settings or {})
        settings.setdefault("init_timeout", init_timeout)
        super().__init__(name=name, settings=settings, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)  # wandb warns about the setting even when it is None
        self._requested_mode, self._finish_timeout, self._init_timeout = mode, finish_timeout, init_timeout
        self._user_tags, self._user_group = list(tags or []), group
        self._monitor, self._monitor_mode = monitor, monitor_mode
        self._broken = False
        self.mode: str | None = None

    # -- lifecycle
    def start(self, run_cfg: DictConfig | None = None) -> SafeWandbLogger | None:
        """Create the W&B run now (so a failure cannot surface mid-training); None if W&B is unusable."""
        if rank_zero_only.rank != 0:
            return self
        try:
            import wandb
        except Exception as err:  # noqa: BLE001 - a broken install must not stop training
            log.warning("W&B disabled: cannot import wandb (%s)", err)
            return None
        group, name, tags = run_identity(run_cfg, self._user_group, self._name, self._user_tags)
        self._wandb_init.update(group=group, name=name, tags=tags)
        self._name = name
        env_mode = os.environ.get("WANDB_MODE")
        mode = self._requested_mode or env_mode or ("online" if has_api_key() else "offline")
        why = ("logger.wandb.mode" if self._requested_mode else "WANDB_MODE" if env_mode
               else "API key found" if mode == "online" else "no API key configured")
        if wandb.run is not None:  # a run a previous job in this process left open
            self._safe_finish(wandb.run)
        # Without a key an online init fails locally at once (then offline); with one, a silent server would
        # hold the run past init_timeout: probe it first.
        if mode == "online" and has_api_key() and not server_answers(self._init_timeout):
            log.warning("W&B server %s did not answer within init_timeout=%ss; logging offline instead",
                        server_url(), self._init_timeout)
            mode, why = "offline", "server did not answer"
        for attempt in (mode, "offline"):
            self._wandb_init["mode"] = attempt
            self._experiment = None
            try:
                run = self.experiment
                self.mode = attempt
                break
            except Exception as err:  # noqa: BLE001
                if attempt == "offline" or mode in ("offline", "disabled"):
                    log.warning("W&B disabled for this run: %s", one_line(err))
                    return None
                log.warning("W&B %s init failed (%s); logging offline instead", attempt, one_line(err))
                why = f"{attempt} init failed"
        self._describe(run, why)
        try:
            if self._monitor:
                run.define_metric(self._monitor, summary="min" if self._monitor_mode == "min" else "max")
            if run_cfg is not None:
                self.log_hyperparams(OmegaConf.to_container(run_cfg, resolve=True))
        except Exception as err:  # noqa: BLE001
            self._fail(err)
        return None if self._broken else self

    def _describe(self, run, why: str) -> None:
        where = getattr(run, "dir", None)
        where = str(Path(where).parent) if where else self.save_dir
        if self.mode == "online":
            log.info("W&B: online (%s): %s", why, getattr(run, "url", None) or run.project)
        elif self.mode == "disabled":
            log.info("W&B: disabled (%s)", why)
        else:
            log.info("W&B: offline (%s); run saved in %s; upload later with `wandb sync %s`", why, where, where)

    def _fail(self, err: BaseException) -> None:
        if not self._broken:
            log.warning("W&B stopped logging for this run after an error: %s (training goes on)", one_line(err))
        self._broken = True

    def _guard(self, fn, *args, **kwargs):
        if self._broken:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001
            self._fail(err)
            return None

    # -- Lightning hooks, each guarded
    def log_metrics(self, metrics, step=None) -> None:
        self._guard(super().log_metrics, metrics, step)

    def log_hyperparams(self, params) -> None:
        self._guard(super().log_hyperparams, params)

    def after_save_checkpoint(self, checkpoint_callback) -> None:
        self._guard(super().after_save_checkpoint, checkpoint_callback)

    def finalize(self, status: str) -> None:
        self._guard(super().finalize, status)
        if status != "success":  # fit/validate/test raised: end the W&B run now, marked as failed
            self.finish(exit_code=1)

    # -- modlab extras
    def log_result(self, result, best: float | None, figures=()) -> None:
        """Per-label table with thresholds, confusion counts, sample predictions, per-label PR/ROC curves,
        section tables (bias, robustness), the report's figures as images, best value in the summary."""
        self._guard(self._log_result, result, best, figures)

    def _log_result(self, result, best, figures=()) -> None:
        import wandb

        if rank_zero_only.rank != 0 or self._experiment is None:
            return
        run, split, metrics, gate = self._experiment, result.split, result.metrics, result.gate
        columns = ["label", "positives", "f1", "precision", "recall", "auroc", "auprc", "threshold", "f1_tuned",
                   "precision_tuned", "recall_tuned", "gate"]
        rows = []
        for name in result.label_names:
            row: list[Any] = [name]
            for key in columns[1:]:
                if key == "threshold":
                    value = metrics.get(f"val/threshold/{name}")  # tuned on val, applied to every split
                elif key == "gate":
                    g = (gate or {}).get("labels", {}).get(name)
                    value = None if g is None or g["passed"] is None else ("pass" if g["passed"] else "fail")
                else:
                    value = metrics.get(f"{split}/{key}/{name}")
                row.append(None if isinstance(value, float) and math.isnan(value) else value)
            rows.append(row)
        payload: dict[str, Any] = {f"{split}/per_label": wandb.Table(columns=columns, data=rows)}
        payload[f"{split}/confusion"] = wandb.Table(
            columns=["label", "threshold", "tp", "fp", "tn", "fn"],
            data=[[n, float(result.operating[j]), *(int(v) for v in result.confusion[j, :4])]
                  for j, n in enumerate(result.label_names)])
        payload[f"{split}/samples"] = wandb.Table(columns=SAMPLE_COLUMNS, data=sample_rows(result))
        for path in figures:
            payload[f"{split}/figures/{Path(path).stem}"] = wandb.Image(str(path))
        for key, section in result.sections.items():
            if section.rows:
                payload[f"{split}/{key}/table"] = wandb.Table(columns=list(section.header),
                                                               data=[[_cell(c) for c in r] for r in section.rows])
        curve_data = result.curves
        if curve_data:
            names = list(curve_data)
            for kind, (xname, title) in (("pr", ("recall", "Precision-recall")), ("roc", ("false positive rate", "ROC"))):
                payload[f"{split}/curves/{kind}"] = wandb.plot.line_series(
                    xs=[curve_data[n][kind][0].tolist() for n in names], ys=[curve_data[n][kind][1].tolist() for n in names],
                    keys=names, title=f"{title} curves per label ({split})", xname=xname)
        run.log(payload)
        if best is not None and self._monitor and not math.isnan(best):
            run.summary[self._monitor] = best  # the best epoch's value, not the last one logged
        if gate is not None:
            run.summary["gate/passed"] = bool(gate["passed"])

    def finish(self, exit_code: int | None = None) -> None:
        if self._experiment is not None and rank_zero_only.rank == 0:
            self._safe_finish(self._experiment, exit_code)
        self._experiment = None
        self._broken = True  # nothing more to log to a finished run

    def _safe_finish(self, run, exit_code: int | None = None) -> None:
        """run.finish() in a thread, waited on for at most finish_timeout seconds (an upload may hang)."""
        errors: list[BaseException] = []

        def target():
            try:
                run.finish(exit_code=exit_code)
            except BaseException as err:  # noqa: BLE001
                errors.append(err)

        thread = threading.Thread(target=target, name="wandb-finish", daemon=True)
        thread.start()
        thread.join(self._finish_timeout)
        if thread.is_alive():
            log.warning("W&B finish did not complete in %ss; the run stays on disk under %s for `wandb sync`",
                        self._finish_timeout, self.save_dir)
        elif errors:
            log.warning("W&B finish failed: %s", one_line(errors[0]))


def _cell(value):
    """A table cell W&B accepts in a typed column: no NaN, no empty string in a number column."""
    if value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


SAMPLE_COLUMNS = ["id", "text", "label", "mark", "score", "threshold", "true labels", "flagged"]


def sample_rows(result) -> list[list]:
    """The report's showcase as table rows: each label's most confident false positives and negatives."""
    p, names = result.predictions, list(result.label_names)
    flagged = p.probs >= result.operating
    rows = []
    for j, name in enumerate(names):
        for mark, indices in (("FP", result.mistakes.get(j, {}).get("fp", ())),
                              ("FN", result.mistakes.get(j, {}).get("fn", ()))):
            for i in indices:
                rows.append([p.ids[i], p.texts[i], name, mark, float(p.probs[i, j]), float(result.operating[j]),
                             ", ".join(n for k, n in enumerate(names) if p.labels[i, k] >= 0.5),
                             ", ".join(n for k, n in enumerate(names) if flagged[i, k])])
    return rows


# -------------------------------------------------------------------------------------------- all loggers

def log_results(loggers: list[Logger], result, metrics: dict[str, float], logged, best: float | None = None,
                step: int = 0, figures=()) -> None:
    """After evaluation: the metrics the LightningModule did not log (`logged`) go to every logger; W&B
    also gets the shown result's tables and curves."""
    plain = {k: v for k, v in metrics.items() if k not in logged and v is not None and not math.isnan(v)}
    for logger in loggers:
        try:
            if plain:
                logger.log_metrics(plain, step=step)
                logger.save()
            if isinstance(logger, SafeWandbLogger):
                logger.log_result(result, best, figures)
        except Exception as err:  # noqa: BLE001 - a logger must not fail a finished run
            log.warning("logger %s failed: %s", type(logger).__name__, one_line(err))


def finish_loggers(loggers: list[Logger]) -> None:
    """End each W&B run (each multirun job is its own run)."""
    for logger in loggers:
        if isinstance(logger, SafeWandbLogger):
            logger.finish()
