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
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from modlab.errors import one_line
from modlab.runinfo import run_identity

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
        self._requested_mode, self._finish_timeout = mode, finish_timeout
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
    def log_run_results(self, *, split: str, metrics: dict[str, float], label_names: list[str],
                        curve_data: dict | None, gate: dict | None, best: float | None) -> None:
        """Per-label table with thresholds, per-label PR/ROC curves, best monitored value in the summary."""
        self._guard(self._log_run_results, split, metrics, label_names, curve_data, gate, best)

    def _log_run_results(self, split, metrics, label_names, curve_data, gate, best) -> None:
        import wandb

        if rank_zero_only.rank != 0 or self._experiment is None:
            return
        run = self._experiment
        columns = ["label", "positives", "f1", "precision", "recall", "auroc", "auprc", "threshold", "f1_tuned",
                   "precision_tuned", "recall_tuned", "gate"]
        rows = []
        for name in label_names:
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


# -------------------------------------------------------------------------------------------- all loggers

def log_run_results(loggers: list[Logger], *, split: str, metrics: dict[str, float], new_metrics: dict[str, float],
                    label_names: list[str], curve_data: dict | None = None, gate: dict | None = None, best: float | None = None, step: int = 0) -> None:
    """After evaluation: metrics computed outside the LightningModule go to every logger; W&B extras."""
    plain = {k: v for k, v in new_metrics.items() if v is not None and not math.isnan(v)}
    for logger in loggers:
        try:
            if plain:
                logger.log_metrics(plain, step=step)
                logger.save()
            if isinstance(logger, SafeWandbLogger):
                logger.log_run_results(split=split, metrics=metrics, label_names=label_names,
                                       curve_data=curve_data, gate=gate, best=best)
        except Exception as err:  # noqa: BLE001 - a logger must not fail a finished run
            log.warning("logger %s failed: %s", type(logger).__name__, one_line(err))


def finish_loggers(loggers: list[Logger]) -> None:
    """End each W&B run (each multirun job is its own run)."""
    for logger in loggers:
        if isinstance(logger, SafeWandbLogger):
            logger.finish()


# ------------------------------------------------------------------------------- offline run files, read back

_HEADER = b":W&B"
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def wandb_records(path: str | Path) -> Iterator[Any]:
    """The protobuf records (wandb.proto Record) of a `.wandb` transaction log, checksums verified.

    wandb >= 0.2x has no Python reader for these files (wandb-core writes them); the framing is
    leveldb's log format: 32 KiB blocks of chunks with a 7-byte header (crc32, length, type).
    """
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != _HEADER:
        raise ValueError(f"{path} is not a W&B transaction log")
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if _BLOCK - pos % _BLOCK < 7:  # block trailer too small for a header: padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):  # the tail of a log still being written
            break
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            break
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise ValueError(f"{path}: checksum mismatch at byte {pos}")
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def read_offline_run(run_dir: str | Path, wait: float = 10.0) -> dict:
    """{'run': {id, project, group, tags, job_type}, 'config': {...}, 'summary': {...}, 'history': [{...}]}.

    wandb-core writes the log in its own process and may still be flushing it just after `finish()`
    returns: wait up to `wait` seconds for the run's exit record.
    """
    import json
    import time

    run_dir = Path(run_dir)
    files = [run_dir] if run_dir.suffix == ".wandb" else sorted(run_dir.glob("*.wandb"))
    if not files:
        raise FileNotFoundError(f"no .wandb file in {run_dir}")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(files[0])):
        time.sleep(0.1)

    def put(target: dict, item) -> None:
        """Set item's value at its key; a nested key (a table's fields, say) becomes nested dicts."""
        parts = list(item.nested_key) or [item.key]
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[parts[-1]] = json.loads(item.value_json)

    out: dict[str, Any] = {"run": {}, "config": {}, "summary": {}, "history": []}
    for record in wandb_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            out["run"] = {"id": r.run_id, "project": r.project, "group": r.run_group, "tags": list(r.tags),
                          "job_type": r.job_type, "name": r.display_name}
            for item in r.config.update:
                put(out["config"], item)
        elif kind == "config":
            for item in record.config.update:
                put(out["config"], item)
        elif kind == "summary":
            for item in record.summary.update:
                put(out["summary"], item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                put(row, item)
            out["history"].append(row)
    return out
