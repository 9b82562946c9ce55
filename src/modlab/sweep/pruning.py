"""The pruning callback the sweeper injects into every trial (config key `callbacks.optuna_pruning`).

It rebuilds the trial from (storage, study name, trial id), so it works the same whether the job runs in
the sweeper's process or in another process or machine: after every validation during `fit` it reports the
monitored metric to the trial and asks the pruner; when the pruner says stop it records the epoch on the
trial and raises `optuna.TrialPruned`, which ends training at once and reaches the sweeper, which records
the trial PRUNED. As fit starts it also records the job on the trial (process, run dir) and writes the run
dir's `trial.yaml` as RUNNING, so a trial killed mid-training leaves a dir that says so.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Mapping
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from modlab.sweep.attrs import EPOCHS, JOB_PID, PRUNED_AT, RUN_DIR
from modlab.sweep.results import write_trial_record

log = logging.getLogger(__name__)


def load_trial(storage: str, study_name: str, trial_id: int, pruner: Mapping[str, Any] | None = None):
    """The live `optuna.Trial` for `trial_id`, with the study's pruner rebuilt from its spec."""
    import optuna

    from modlab.sweep.factory import build_pruner
    from modlab.sweep.storage import connect

    study = optuna.load_study(study_name=study_name, storage=connect(storage), sampler=optuna.samplers.RandomSampler(),
                              pruner=build_pruner(pruner))
    return optuna.Trial(study, int(trial_id))


class OptunaPruning(L.Callback):
    """Report `monitor` after each validation during fit; raise `optuna.TrialPruned` when the pruner says so."""

    def __init__(self, storage: str, study_name: str, trial_id: int, monitor: str,
                 pruner: Mapping[str, Any] | None = None, trial_number: int | None = None,
                 run_dir: str | None = None, report: bool = True) -> None:
        super().__init__()
        self.report = report  # false in a cross-validated trial: the sweeper reports the fold means itself
        self.storage, self.study_name, self.trial_id = storage, study_name, int(trial_id)
        self.monitor, self.trial_number, self.run_dir = monitor, trial_number, run_dir
        self.pruner = dict(pruner) if pruner is not None else {"name": "none"}
        self._trial = None
        self._validations = 0
        self._warned = False

    def _get_trial(self):
        if self._trial is None:
            self._trial = load_trial(self.storage, self.study_name, self.trial_id, self.pruner)
        return self._trial

    def close(self) -> None:
        """Close this trial's database connections. Each job opens its own engine; in the sweeper's process
        (the basic launcher) an unclosed one kept a PostgreSQL connection per finished trial open until the
        garbage collector happened to run, which adds up against the server's max_connections."""
        trial, self._trial = self._trial, None
        storage = getattr(getattr(trial, "study", None), "_storage", None)
        engine = getattr(getattr(storage, "_backend", storage), "engine", None)
        if engine is not None:
            try:
                engine.dispose()
            except Exception as err:  # closing is best effort; never turn a finished trial into a failed one
                log.debug("optuna pruning: closing the storage engine failed: %s", err)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != TrainerFn.FITTING or not trainer.is_global_zero:
            return
        trial = self._get_trial()
        trial.set_user_attr(JOB_PID, f"{socket.gethostname()}:{os.getpid()}")
        if not self.run_dir:
            return
        trial.set_user_attr(RUN_DIR, self.run_dir)  # where recovery finds trial.yaml if this process dies
        write_trial_record(trial.study._storage.get_trial(self.trial_id), self.study_name, self.run_dir)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validations = 0

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.close()  # a pruned or failed fit ends here (Lightning calls no teardown hook then)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.close()

    def _check(self, trainer: L.Trainer) -> tuple[bool, str]:
        trial = self._get_trial()
        step = self._validations
        trial.set_user_attr(EPOCHS, int(trainer.current_epoch) + 1)
        if len(trial.study.directions) > 1 or not self.report:
            return False, ""
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            if not self._warned:
                log.warning("optuna pruning: %r is not among the logged metrics; nothing reported", self.monitor)
                self._warned = True
            return False, ""
        value = float(value)
        if not math.isfinite(value):
            log.warning("optuna pruning: %s=%s at step %d is not finite; not reported", self.monitor, value, step)
            return False, ""
        trial.report(value, step)
        if not trial.should_prune():
            return False, ""
        trial.set_user_attr(PRUNED_AT, int(trainer.current_epoch))
        return True, f"trial {trial.number} pruned after epoch {trainer.current_epoch}: {self.monitor}={value:.4f}"

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        prune, message = self._check(trainer) if trainer.is_global_zero else (False, "")
        self._validations += 1
        if trainer.world_size > 1:
            prune = trainer.strategy.broadcast(prune)
        if prune:
            import optuna

            log.info(message or "trial pruned")
            raise optuna.TrialPruned(message or "pruned")
