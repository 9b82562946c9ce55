"""Trials whose worker died: heartbeats, dead-process detection on this host, and one retry.

Every RUNNING trial a sweeper owns gets a heartbeat from that sweeper every `heartbeat_interval` seconds
and records which process runs it (host, pid, process start time). Before asking for a trial, a sweeper
fails the RUNNING trials that are stale: on this host, those whose process is gone (found at once, so
re-running a killed sweep resumes immediately); on any host, those whose heartbeat is older than the grace
period (Optuna's own heartbeat check). A stale trial is marked FAIL and re-queued once with the same
params; the re-queued copy is what the next `ask()` returns. The stale trial's `trial.yaml` (written RUNNING
by its job) is rewritten FAIL with the reason, where its run dir is on this machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import warnings
from typing import Any

from modlab.sweep.attrs import ERROR, FAIL_KIND, RETRY_OF, STALE_RETRIES, WORKER
from modlab.sweep.results import write_trial_record

log = logging.getLogger(__name__)

MAX_RETRIES = 1  # a trial whose worker died is re-run once with the same params; dying twice is final


def _proc_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else fields[19]  # field 22 of stat: start time in clock ticks


def worker_info() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _proc_start(os.getpid())}


def process_alive(info: dict[str, Any]) -> bool | None:
    """True/False for a process on this host; None when it runs elsewhere (only the heartbeat can tell)."""
    if not info or info.get("host") != socket.gethostname():
        return None
    pid = int(info.get("pid", -1))
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if os.path.isdir("/proc"):
        started = _proc_start(pid)
        if started is None:  # zombie or gone
            return False
        if info.get("started") is not None and started != info["started"]:
            return False  # the pid was reused by another process
    return True


def requeue(study, frozen, reason: str = "died") -> int | None:
    """Queue the same params again as a WAITING trial (at most MAX_RETRIES times for trials that died)."""
    import optuna

    if not frozen.distributions:
        return None  # it died before its params were drawn: a fresh trial replaces it
    retries = int(frozen.system_attrs.get(STALE_RETRIES, 0)) + (1 if reason == "died" else 0)
    if reason == "died" and retries > MAX_RETRIES:
        log.warning("trial %d died again; not retrying it a second time", frozen.number)
        return None
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=frozen.params, distributions=frozen.distributions,
        system_attrs={RETRY_OF: frozen.system_attrs.get(RETRY_OF, frozen.number), STALE_RETRIES: retries},
    ))
    log.warning("trial %d (%s) re-queued with the same params", frozen.number, reason)
    return retries


def fail_dead_trials(study, own_ids: set[int]) -> list[int]:
    """FAIL the RUNNING trials whose process on this host is gone, and re-queue each once."""
    import optuna
    from optuna.trial import TrialState

    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t._trial_id in own_ids:
            continue
        info = t.system_attrs.get(WORKER)
        if process_alive(info) is not False:
            continue
        storage = study._storage
        try:
            storage.set_trial_user_attr(t._trial_id, FAIL_KIND, "died")
            storage.set_trial_user_attr(t._trial_id, ERROR, f"its sweeper process {info.get('pid')} died")
            if not storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        log.warning("trial %d was left RUNNING by process %s, which is gone: marked FAIL", t.number, info.get("pid"))
        failed.append(t.number)
        frozen = storage.get_trial(t._trial_id)
        write_trial_record(frozen, study.study_name)
        requeue(study, frozen)
    return failed


def fail_stale_by_heartbeat(study) -> None:
    """Optuna's heartbeat check (the storage's stale-trial callback re-queues what it fails)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def stale_callback():
    def callback(study, frozen) -> None:
        log.warning("trial %d missed its heartbeats (worker lost): marked FAIL", frozen.number)
        # Optuna has already failed it, so the study can no longer take an error attribute: the record says it.
        write_trial_record(frozen, study.study_name, error="its sweeper stopped sending heartbeats (worker lost)")
        requeue(study, frozen)

    return callback


class Heartbeat:
    """Records a heartbeat for every trial this sweeper has in flight, from a daemon thread."""

    def __init__(self, rdb_storage, interval: int | None) -> None:
        self.storage, self.interval = rdb_storage, interval
        self.trial_ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if interval:
            # A forked job must not inherit this lock held, nor the parent's database connections.
            os.register_at_fork(before=self._lock.acquire, after_in_parent=self._lock.release,
                                after_in_child=self._after_fork_child)

    def _after_fork_child(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stop.set()
        with contextlib.suppress(Exception):
            self.storage.engine.dispose(close=False)

    def beat(self, trial_ids=None) -> None:
        if not self.interval:
            return
        with self._lock:
            for trial_id in list(trial_ids if trial_ids is not None else self.trial_ids):
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as err:  # a busy database must not kill the sweep; the next beat retries
                    log.debug("heartbeat for trial id %d failed: %s", trial_id, err)

    def add(self, trial_id: int) -> None:
        self.trial_ids.add(trial_id)
        self.beat([trial_id])

    def discard(self, trial_id: int) -> None:
        self.trial_ids.discard(trial_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def start(self) -> Heartbeat:
        if self.interval and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="optuna-heartbeat", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
