"""The `modlab_process` launcher: every job in its own forked process, up to `n_jobs` at a time.

Isolation for sweeps: a trial that segfaults, is killed by the OOM killer or leaks GPU memory takes only its
own process down, and the sweeper records it FAIL and goes on. The job's return value (or exception, e.g.
`optuna.TrialPruned`) comes back through a pipe as JSON (status, values or the error's one line, output
dir) and becomes Hydra's JobReturn again; nothing read from the pipe is unpickled. Needs `fork` (Linux, macOS).
Hydra knows it as `hydra_plugins.modlab_optuna_sweeper.ModlabProcessLauncher`.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """Linux: SIGTERM this job when the sweeper dies, so a killed sweep leaves no orphan training."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except Exception:
            pass


def _message(ret: JobReturn) -> bytes:
    """What the sweeper reads of a job: its status, its objective value(s) or its error's one line, its run dir."""
    import optuna

    from modlab.errors import one_line

    value = ret._return_value
    message = {"status": ret.status.name, "overrides": list(ret.overrides or [])}
    if isinstance(value, BaseException):
        message["error"] = {"pruned": isinstance(value, optuna.TrialPruned), "line": one_line(value)}
    else:
        try:
            message["value"] = json.loads(json.dumps(value, default=float))  # numpy and torch scalars as floats
        except (TypeError, ValueError):
            message["value"] = repr(value)  # the sweeper reports it as "not a number"
    try:
        message["output_dir"] = str(ret.hydra_cfg.hydra.runtime.output_dir)
    except Exception:
        message["output_dir"] = None
    return json.dumps(message).encode()


def _job_return(message: bytes) -> JobReturn:
    import optuna

    from modlab.errors import ModlabError

    got = json.loads(message)
    ret = JobReturn(overrides=got["overrides"], status=JobStatus[got["status"]])
    error = got.get("error")
    if error is not None:
        ret._return_value = optuna.TrialPruned(error["line"]) if error["pruned"] else ModlabError(error["line"])
    else:
        ret._return_value = got.get("value")
    ret.hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": got.get("output_dir")}}})
    return ret


def _child(conn, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
    _die_with_parent()
    code = 0
    try:
        ret = run_job(hydra_context=hydra_context, task_function=task_function, config=config,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    except BaseException as err:  # SystemExit / KeyboardInterrupt from inside the job
        ret = JobReturn(overrides=list(config.hydra.overrides.task), status=JobStatus.FAILED)
        ret._return_value = RuntimeError(f"{type(err).__name__}: {err}")
        code = 1
    try:
        conn.send_bytes(_message(ret))
    finally:
        conn.close()
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)  # skip the parent's atexit handlers and finalizers inherited through fork


class ProcessLauncher(Launcher):
    def __init__(self, n_jobs: int = 1, preload: Sequence[str] = ()) -> None:
        super().__init__()
        self.n_jobs = max(1, int(n_jobs))
        self.preload = list(preload or [])
        self._preloaded = False
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def _job_config(self, overrides: Sequence[str], idx: int) -> DictConfig:
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(cfg):
            cfg.hydra.job.id = idx
            cfg.hydra.job.num = idx
        return cfg

    def _preload(self) -> None:
        """Import the job's heavy modules here once; forked jobs share them instead of importing each time."""
        if self._preloaded:
            return
        self._preloaded = True
        for name in self.preload:
            try:
                importlib.import_module(name)
            except Exception as err:
                log.warning("preload of %s failed (%s); jobs import it themselves", name, err)

    def _output_dir(self, cfg: DictConfig) -> str | None:
        try:
            return str(Path(str(cfg.hydra.sweep.dir)) / str(OmegaConf.select(cfg, "hydra.sweep.subdir")))
        except Exception:
            return None

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import multiprocessing
        from multiprocessing.connection import wait

        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        self._preload()
        ctx = multiprocessing.get_context("fork")
        pending = list(enumerate(job_overrides))
        results: dict[int, JobReturn] = {}
        # A job's pipe becomes readable when its result arrives or, if the process dies first, at EOF.
        running: dict[Any, tuple[int, Any, DictConfig]] = {}  # recv end -> (i, process, cfg)
        try:
            while pending or running:
                while pending and len(running) < self.n_jobs:
                    i, overrides = pending.pop(0)
                    idx = initial_job_idx + i
                    log.info("\t#%d : %s (own process)", idx, " ".join(filter_overrides(overrides)))
                    cfg = self._job_config(overrides, idx)
                    recv, send = ctx.Pipe(duplex=False)
                    proc = ctx.Process(target=_child, args=(send, self.hydra_context, self.task_function, cfg))
                    proc.start()
                    send.close()
                    running[recv] = (i, proc, cfg)
                for recv in wait(list(running)):
                    i, proc, cfg = running.pop(recv)
                    try:
                        ret = _job_return(recv.recv_bytes())
                    except (EOFError, OSError, ValueError, KeyError):  # died before sending, or mid-message
                        ret = None
                    recv.close()
                    proc.join()
                    if ret is None:
                        ret = JobReturn(overrides=list(job_overrides[i]), status=JobStatus.FAILED)
                        ret._return_value = RuntimeError(f"the job process died (exit code {proc.exitcode})")
                        ret.hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": self._output_dir(cfg)}}})
                    results[i] = ret
        except BaseException:
            for _, proc, _ in running.values():
                proc.terminate()
                proc.join(timeout=10)
            raise
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [results[i] for i in range(len(job_overrides))]
