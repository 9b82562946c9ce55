"""The sweep loop behind the `modlab_optuna` Hydra sweeper: ask -> launch -> tell, resumable and shareable.

Contract with each job (a normal `modlab.training.train.run`): the sweeper adds the overrides

    +optuna.{study_name,storage,trial_number,trial_id}=...        trial identity (W&B groups by study name)
    +callbacks.optuna_pruning={_target_: modlab.sweep.pruning.OptunaPruning, run_dir: <its output dir>, ...}

and reads back the job's return value (the optimized metric, or a tuple of them). A job that raises
`optuna.TrialPruned` (or that recorded `pruned_at_epoch` on its trial, whatever exception then reached us)
is PRUNED; any other exception, a NaN value or a wrong number of values is FAIL with its error.

With `folds: K` a trial is K jobs (`data.folds=K data.fold=i`) launched fold by fold; its value is the mean
over folds, and the sweeper itself reports the running mean to the pruner after each fold (the jobs' callback
then reports nothing: epochs of different folds are not comparable steps).

`n_trials` counts COMPLETE + PRUNED trials of the study, whoever ran them: every worker started with the
same command stops when the study has that many; re-running after a crash continues where it stopped.
"""

from __future__ import annotations

import logging
import math
import statistics
import sys
import time
import types
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from modlab.errors import ModlabError, one_line
from modlab.evaluation.objectives import metric_names
from modlab.io import atomic_write_text
from modlab.sweep import factory, recovery, results
from modlab.sweep.attrs import (
    ERROR,
    FAIL_KIND,
    FOLD_STD,
    FOLD_VALUES,
    PRUNED_AFTER_FOLD,
    PRUNED_AT,
    RUN_DIR,
    WORKER,
)
from modlab.sweep.settings import SweeperSettings
from modlab.sweep.space import SearchSpace, first_values, parse_search_space, render
from modlab.sweep.storage import check_path_name, default_url, has_password, masked, open_storage

log = logging.getLogger(__name__)

DIRECTIONS = {"maximize": "maximize", "max": "maximize", "minimize": "minimize", "min": "minimize"}
SPACE_ATTR = "modlab:search_space"
OVERRIDES_ATTR = "modlab:fixed_overrides"
STATELESS_SAMPLERS = {"tpe", "random", "gp", "cmaes"}  # re-seeded per trial number; qmc keeps one sequence


@dataclass
class Plan:
    space: SearchSpace
    directions: list[str]
    metrics: list[str]
    study_name: str
    url: str
    rdb: Any
    study: Any
    sampler_args: dict[str, Any]
    pruner: dict[str, Any]
    sweep_dir: Path
    allowed_failures: float
    sampler: Any = None  # used as is by the samplers not re-seeded per trial (qmc)
    returns: list = field(default_factory=list)


def _padded(returns: list, batch: list) -> list:
    """One return per trial: a launcher that returned fewer left the rest without a result (None)."""
    return list(returns)[:len(batch)] + [None] * (len(batch) - len(returns))


def _list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(OmegaConf.to_container(value, resolve=True)) if OmegaConf.is_config(value) else list(value)


def normalize_directions(direction) -> list[str]:
    out = []
    for d in _list(direction):
        key = str(d).lower()
        if key not in DIRECTIONS:
            raise ModlabError(f"hydra.sweeper.direction: {d!r} is neither maximize nor minimize")
        out.append(DIRECTIONS[key])
    if not out:
        raise ModlabError("hydra.sweeper.direction is empty; use maximize, minimize or a list of them")
    return out


def allowed_failures(rate: float, n_trials: int) -> float:
    """Failures tolerated so that failed / (n_trials + failed) stays <= max_failure_rate."""
    if rate >= 1:
        return math.inf
    return rate / (1.0 - rate) * n_trials


def _config_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for k in cfg:
        if prefix == "" and k == "hydra":
            continue
        path = f"{prefix}{k}"
        keys.append(path)
        node = cfg._get_node(k)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            keys += _config_keys(node, f"{path}.")
    return keys


def _has_key(cfg: DictConfig, dotted: str) -> bool:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node._get_node(part)
    return True


def check_paths(space: SearchSpace, cfg: DictConfig, config_loader) -> None:
    """Each searched key is a config group (and each choice one of its options) or an existing config key."""
    import difflib

    from optuna.distributions import CategoricalDistribution

    groups = {}
    for name, p in space.params.items():
        key = name.split("@", 1)[0]
        options = config_loader.get_group_options(key.replace(".", "/")) if config_loader else []
        if options:
            groups[key] = p
            if not isinstance(p.distribution, CategoricalDistribution):
                raise ModlabError(f"{p.describe()}: {key} is a config group; search it with choice(...)")
            for choice in p.distribution.choices:
                if str(choice) not in options:
                    raise ModlabError(f"{p.describe()}: {choice!r} is not an option of config group {key!r} "
                                      f"(options: {', '.join(options)})")
    for name, p in space.params.items():
        key = name.split("@", 1)[0]
        if key in groups or p.prefix == "++":
            continue
        inside_searched_group = any(key.startswith(g + ".") for g in groups)
        exists = _has_key(cfg, key)
        if p.prefix == "+" and exists:
            raise ModlabError(f"{p.describe()}: +{key} adds a key that already exists; drop the '+'")
        if p.prefix == "" and not exists and not inside_searched_group:
            close = difflib.get_close_matches(key, _config_keys(cfg), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; prefix it with '+' to add a new key"
            raise ModlabError(f"unknown parameter path {key!r} in the search space{hint}")


def _compose(config_loader, master: DictConfig, overrides: list[str]) -> DictConfig:
    try:
        return config_loader.load_sweep_config(master_config=master, sweep_overrides=list(overrides))
    except Exception as err:
        raise ModlabError(f"a trial's config does not compose: {one_line(err)}") from None


def check_composition(space: SearchSpace, master: DictConfig, config_loader) -> DictConfig:
    """Compose one trial config per searched config-group option (the first for everything else)."""
    from optuna.distributions import CategoricalDistribution

    base = first_values(space)
    first = _compose(config_loader, master, space.fixed + space.overrides(base))
    for name, p in space.params.items():
        key = name.split("@", 1)[0]
        if not isinstance(p.distribution, CategoricalDistribution) or not config_loader.get_group_options(
                key.replace(".", "/")):
            continue
        for choice in p.distribution.choices[1:]:
            _compose(config_loader, master, space.fixed + space.overrides({**base, name: choice}))
    return first


def job_overrides(study_name: str, url: str, monitor: str, pruner: dict, trial, fold: tuple[int, int] | None = None
                  ) -> list[str]:
    """What every job gets besides its params: the trial's identity and the pruning callback; `fold`: (i, K)
    of a cross-validated trial, whose callback then only records the job (the sweeper reports per fold)."""
    spec = ",".join(f"{k}:{render(v)}" for k, v in pruner.items())
    cb = "+callbacks.optuna_pruning"
    folds = [f"data.folds={fold[1]}", f"data.fold={fold[0]}", f"+optuna.fold_dir=/fold_{fold[0]}",  # for subdirs
             f"{cb}.report=false"] if fold else []
    return folds + [
        f"+optuna.study_name={render(study_name)}",
        f"+optuna.storage={render(url)}",
        f"+optuna.trial_number={trial.number}",
        f"+optuna.trial_id={trial._trial_id}",
        f"{cb}._target_=modlab.sweep.pruning.OptunaPruning",
        f"{cb}.storage=${{optuna.storage}}",
        f"{cb}.study_name=${{optuna.study_name}}",
        f"{cb}.trial_id=${{optuna.trial_id}}",
        f"{cb}.trial_number=${{optuna.trial_number}}",
        f"{cb}.monitor={render(monitor)}",
        f"{cb}.run_dir=${{hydra:runtime.output_dir}}",
        f"{cb}.pruner={{{spec}}}",
    ]


def check_folds(folds, space: SearchSpace) -> int | None:
    """hydra.sweeper.folds: K >= 2 or null; the sweeper then owns data.folds/data.fold of every job."""
    if folds is None:
        return None
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ModlabError(f"hydra.sweeper.folds={folds!r} must be an integer >= 2 (or null); e.g. "
                          f"hydra.sweeper.folds=5")
    taken = [o for o in list(space.fixed) + list(space.params) if o.lstrip("+~").split("=")[0] in
             ("data.folds", "data.fold")]
    if taken:
        raise ModlabError(f"hydra.sweeper.folds={folds} sets data.folds and data.fold of every job; drop "
                          f"{', '.join(taken)} from the command line")
    return folds


class SweepRunner:
    def __init__(self, settings: SweeperSettings, config: DictConfig, hydra_context, launcher) -> None:
        self.s, self.config, self.hydra_context, self.launcher = settings, config, hydra_context, launcher
        self.heartbeat: recovery.Heartbeat | None = None
        self.in_flight: dict[int, Any] = {}

    # --- before any trial ---------------------------------------------------------------------------------
    def prepare(self, arguments: list[str]) -> Plan:
        import optuna

        s = self.s
        loader = self.hydra_context.config_loader
        if not isinstance(s.n_trials, int) or s.n_trials < 1:
            raise ModlabError(f"hydra.sweeper.n_trials={s.n_trials!r} must be a positive integer")
        if not isinstance(s.n_jobs, int) or s.n_jobs < 1:
            raise ModlabError(f"hydra.sweeper.n_jobs={s.n_jobs!r} must be a positive integer")
        if not 0 <= float(s.max_failure_rate) <= 1:
            raise ModlabError(f"hydra.sweeper.max_failure_rate={s.max_failure_rate} must be within [0, 1]")
        study_name = self._study_name()
        directions = normalize_directions(s.direction)
        params = OmegaConf.to_container(s.params, resolve=False) if OmegaConf.is_config(s.params) else s.params
        space = parse_search_space(params, arguments, loader)
        if not space.params:
            raise ModlabError("nothing to search: hydra.sweeper.params is empty and no override on the command "
                              "line is a sweep (e.g. optim.lr='tag(log, interval(1e-5, 1e-3))')")
        check_paths(space, self.config, loader)
        job_cfg = check_composition(space, self.config, loader)

        metrics = metric_names(job_cfg.get("optimized_metric"))
        if not metrics:
            raise ModlabError("optimized_metric is null; set it to the metric(s) the sweep optimizes")
        if len(metrics) != len(directions):
            raise ModlabError(
                f"hydra.sweeper.direction has {len(directions)} entr{'y' if len(directions) == 1 else 'ies'} "
                f"{directions} but optimized_metric returns {len(metrics)} value(s) {metrics}; give one direction "
                f"per metric"
            )
        pruner_name = str(s.pruner or "none").lower()
        if len(directions) > 1 and pruner_name != "none":
            log.warning("pruner=%s needs a single objective; this sweep has %d: pruning is off", pruner_name,
                        len(directions))
            pruner_name = "none"
        folds = check_folds(s.folds, space)
        steps = folds or OmegaConf.select(job_cfg, "trainer.max_epochs", default=None)  # what the pruner counts
        pruner = factory.pruner_spec(pruner_name, factory.select_args(s.pruner_args, pruner_name, factory.PRUNERS),
                                     steps)
        sampler_name = str(s.sampler).lower()
        sampler_args = factory.select_args(s.sampler_args, sampler_name, factory.SAMPLERS)
        sampler = factory.build_sampler(sampler_name, s.seed, sampler_args, len(directions))

        url = s.storage or default_url(self._log_dir(), study_name)
        # What the sweeper adds to each job (trial identity, pruning callback) must compose too.
        probe = types.SimpleNamespace(number=0, _trial_id=0, params=first_values(space))
        _compose(loader, self.config, space.fixed + space.overrides(probe.params)
                 + job_overrides(study_name, url, metrics[0], pruner, probe, (0, folds) if folds else None))
        if has_password(url):
            log.warning("the storage URL holds a password, which each trial's config will record; prefer "
                        "PGPASSWORD or ~/.pgpass")
        interval = int(s.heartbeat_interval) if s.heartbeat_interval else None
        grace = int(s.grace_period) if s.grace_period else (max(6 * interval, 60) if interval else None)
        rdb = open_storage(url, interval, grace, recovery.stale_callback())
        try:
            study = optuna.create_study(storage=rdb, study_name=study_name, directions=directions,
                                        load_if_exists=True, sampler=sampler,
                                        pruner=factory.build_pruner(pruner))
        except Exception as err:
            raise ModlabError(f"cannot open study {study_name!r} in {masked(url)}: {one_line(err)}") from None
        self._check_resume(study, space, directions, metrics)

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(sweep_dir / "multirun.yaml", OmegaConf.to_yaml(self.config))  # workers share it
        return Plan(space=space, directions=directions, metrics=metrics, study_name=study_name, url=url, rdb=rdb,
                    study=study, sampler_args=sampler_args, pruner=pruner, sweep_dir=sweep_dir,
                    allowed_failures=allowed_failures(float(s.max_failure_rate), s.n_trials),
                    sampler=sampler)

    def _study_name(self) -> str:
        """hydra.sweeper.study_name, or <task_name>_<hparams_search preset>. Both names become paths, the
        presets' sweep dir `<log_dir>/<task_name>/sweeps/<study_name>` and the default database
        `<log_dir>/optuna/<study_name>.db`, where `../x` or `a/b` would write elsewhere: checked first."""
        task = check_path_name(OmegaConf.select(self.config, "task_name", default=None) or "sweep", "task_name")
        if self.s.study_name is not None:  # an empty name is a mistake, not "use the default"
            return check_path_name(self.s.study_name, "hydra.sweeper.study_name")
        choices = OmegaConf.select(self.config, "hydra.runtime.choices", default={}) or {}
        preset = choices.get("hparams_search") if hasattr(choices, "get") else None
        return check_path_name(f"{task}_{preset}" if preset else task, "hydra.sweeper.study_name")

    def _log_dir(self) -> str:
        log_dir = OmegaConf.select(self.config, "paths.log_dir", default=None)
        return str(log_dir) if log_dir else str(Path.cwd() / "outputs")

    def _check_resume(self, study, space: SearchSpace, directions: list[str], metrics: list[str]) -> None:
        stored = [d.name.lower() for d in study.directions]
        if stored != directions:
            raise ModlabError(
                f"study {study.study_name!r} already exists with direction {stored}, not {directions}; pick "
                f"another hydra.sweeper.study_name or the same direction"
            )
        fingerprint = space.fingerprint()
        previous = study.user_attrs.get(SPACE_ATTR)
        if previous is not None and previous != fingerprint:
            changed = sorted(set(previous) ^ set(fingerprint)) or sorted(
                k for k in fingerprint if previous.get(k) != fingerprint[k])
            raise ModlabError(
                f"study {study.study_name!r} was started with another search space (differs in "
                f"{', '.join(changed)}); resume it with the same space or set hydra.sweeper.study_name=<new name>"
            )
        if previous is None:
            study.set_user_attr(SPACE_ATTR, fingerprint)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental API; names the objectives in optuna-dashboard
                study.set_metric_names(metrics)
        fixed = sorted(space.fixed)
        before = study.user_attrs.get(OVERRIDES_ATTR)
        if before is None:
            study.set_user_attr(OVERRIDES_ATTR, fixed)
        elif sorted(before) != fixed:
            log.warning("study %r was started with overrides %s; this worker runs with %s", study.study_name,
                        before, fixed)
        done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        if done:
            log.info("resuming study %r: %d trials already recorded", study.study_name, len(done))

    # --- the loop -------------------------------------------------------------------------------------
    def run(self, plan: Plan) -> list:
        from optuna.trial import TrialState

        s, study = self.s, plan.study
        self.heartbeat = recovery.Heartbeat(plan.rdb, s.heartbeat_interval).start()
        log.info("study %r in %s: %d trials to reach, sampler=%s, pruner=%s, sweep dir %s", plan.study_name,
                 masked(plan.url), s.n_trials, s.sampler, plan.pruner["name"], plan.sweep_dir)
        failed_budget = False
        try:
            while True:
                self._recover(study)
                trials = study.get_trials(deepcopy=False)
                finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
                if finished >= s.n_trials:
                    break
                errors = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get(FAIL_KIND) == "error"]
                if len(errors) > plan.allowed_failures:
                    failed_budget = True
                    break
                running = sum(t.state == TrialState.RUNNING for t in trials)
                free = s.n_trials - finished - running
                if free <= 0:
                    time.sleep(s.poll_interval)  # other workers hold the remaining trials: wait for them
                    continue
                batch = self._ask(plan, min(s.n_jobs, free))
                if batch:
                    self._launch(plan, batch)
        finally:
            self.heartbeat.stop()
            self._write(plan)
        print(results.summary_table(study, plan.metrics), flush=True)
        summary = results.summary(study, plan.metrics)
        log.info("results: %s", plan.sweep_dir / results.RESULTS)
        if failed_budget:
            last = errors[-1].user_attrs.get(ERROR, "")
            print(f"error: {len(errors)} trials failed, more than max_failure_rate={s.max_failure_rate} allows "
                  f"for n_trials={s.n_trials}; last error: {last}. Fix it and re-run the same command to go on",
                  file=sys.stderr)
            sys.exit(1)
        if "best_value" in summary:
            log.info("best trial %s: %s=%s %s", summary["best_trial"], plan.metrics[0], summary["best_value"],
                     summary["best_params"])
        return plan.returns

    def _recover(self, study) -> None:
        recovery.fail_dead_trials(study, own_ids=set(self.in_flight))
        recovery.fail_stale_by_heartbeat(study)

    def _sampler_for(self, plan: Plan, number: int):
        name = str(self.s.sampler).lower()
        if name in STATELESS_SAMPLERS:
            seed = None if self.s.seed is None else int(self.s.seed) + number
            return factory.build_sampler(name, seed, plan.sampler_args, len(plan.directions))
        return plan.sampler

    def _ask(self, plan: Plan, n: int) -> list:
        import optuna
        from optuna.trial import TrialState

        study, batch = plan.study, []
        for _ in range(n):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with optimize": we beat
                trial = study.ask()
            trial_id = trial._trial_id
            study._storage.set_trial_system_attr(trial_id, WORKER, recovery.worker_info())
            self.heartbeat.add(trial_id)
            self.in_flight[trial_id] = trial
            frozen = study._storage.get_trial(trial_id)
            if not frozen.distributions and self._surplus(study, frozen):
                self._finish_fail(study, trial, "surplus", "the study already had n_trials trials under way")
                continue
            study.sampler = self._sampler_for(plan, trial.number)
            for name, p in plan.space.params.items():
                d = p.distribution
                if isinstance(d, optuna.distributions.CategoricalDistribution):
                    trial.suggest_categorical(name, d.choices)
                elif isinstance(d, optuna.distributions.IntDistribution):
                    trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
                else:
                    trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
            state = study._storage.get_trial(trial_id).state
            if state != TrialState.RUNNING:  # failed by someone else meanwhile
                self._untrack(trial_id)
                continue
            batch.append(trial)
        return batch

    def _surplus(self, study, frozen) -> bool:
        """True when another worker's trial took the last slot between our count and our ask()."""
        from optuna.trial import TrialState

        held = 0
        for t in study.get_trials(deepcopy=False):
            if t.number == frozen.number:
                continue
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING) or (
                    t.state == TrialState.RUNNING and t.number < frozen.number):
                held += 1
        return held >= self.s.n_trials

    def _job_overrides(self, plan: Plan, trial, fold: int | None = None) -> list[str]:
        return list(plan.space.fixed) + plan.space.overrides(trial.params) + job_overrides(
            plan.study_name, plan.url, plan.metrics[0], plan.pruner, trial,
            None if fold is None else (fold, int(self.s.folds)))

    def _launch(self, plan: Plan, batch: list) -> None:
        for trial in batch:
            log.info("trial %d: %s", trial.number, " ".join(plan.space.overrides(trial.params)))
        if self.s.folds:
            self._launch_folds(plan, batch)
            return
        started = time.perf_counter()
        returns = self._call(plan, batch, [self._job_overrides(plan, t) for t in batch], batch[0].number)
        if returns is None:
            return
        for trial, ret in zip(batch, _padded(returns, batch), strict=True):
            self._tell(plan, trial, ret, time.perf_counter() - started)
        self._write(plan)

    def _call(self, plan: Plan, batch: list, overrides: list[list[str]], first_job: int) -> list | None:
        """The launcher's returns for these jobs; None when the launcher itself broke (every trial failed)."""
        try:
            returns = self.launcher.launch(overrides, initial_job_idx=first_job)
        except (KeyboardInterrupt, SystemExit):
            for trial in batch:
                self._interrupted(plan, trial)
                self._record(plan, trial)
            self._write(plan)
            raise
        except Exception as err:  # the launcher itself broke: every trial of the batch failed with it
            log.error("launcher failed: %s", one_line(err))
            for trial in batch:
                self._finish_fail(plan.study, trial, "error", f"launcher failed: {one_line(err)}")
                self._record(plan, trial)
            self._write(plan)
            return None
        plan.returns.append(returns)
        return list(returns)

    def _launch_folds(self, plan: Plan, batch: list) -> None:
        """Cross-validated trials: fold by fold, the running mean reported after each; the mean told at the end."""
        from optuna.trial import TrialState

        k, started = int(self.s.folds), time.perf_counter()
        values: dict[int, list[list[float]]] = {t._trial_id: [] for t in batch}
        alive = list(batch)
        for fold in range(k):
            overrides = [self._job_overrides(plan, t, fold) for t in alive]
            # Job numbers (the default subdir): each fold of the batch gets its own range of len(batch), so none
            # repeats within the batch; the presets' subdir trial_<n>/fold_<i> does not depend on them.
            returns = self._call(plan, alive, overrides, batch[0].number * k + fold * len(batch))
            if returns is None:
                return
            survivors = []
            for trial, ret in zip(alive, _padded(returns, alive), strict=True):
                got = self._fold_values(plan, ret)
                if got is None:  # failed, pruned inside, or a bad value: the trial ends as a plain one would
                    self._tell(plan, trial, ret, time.perf_counter() - started)
                    continue
                values[trial._trial_id].append(got)
                trial.set_user_attr(FOLD_VALUES, values[trial._trial_id])
                running = sum(v[0] for v in values[trial._trial_id]) / (fold + 1)
                if len(plan.directions) == 1:
                    trial.report(running, fold)
                    if fold < k - 1 and trial.should_prune():
                        trial.set_user_attr(PRUNED_AFTER_FOLD, fold)
                        self._finish(plan, trial, TrialState.PRUNED, time.perf_counter() - started)
                        continue
                survivors.append(trial)
            alive = survivors
            self._write(plan)
            if not alive:
                return
        for trial in alive:
            folds = values[trial._trial_id]
            per_metric = list(zip(*folds, strict=True))
            trial.set_user_attr(FOLD_STD, [statistics.stdev(m) for m in per_metric])
            self._finish(plan, trial, TrialState.COMPLETE, time.perf_counter() - started,
                         [statistics.fmean(m) for m in per_metric])
        self._write(plan)

    def _fold_values(self, plan: Plan, ret) -> list[float] | None:
        """One fold's objective values when its job completed with usable ones, else None."""
        from hydra.core.utils import JobStatus

        if ret is None or ret.status != JobStatus.COMPLETED:
            return None
        values, problem = self._values(plan, ret._return_value)
        return None if problem else values

    def _finish(self, plan: Plan, trial, state, seconds: float, values: list[float] | None = None) -> None:
        """Tell a cross-validated trial's end (COMPLETE with the fold means, or PRUNED) and log it."""
        plan.study.tell(trial, values, state=state)
        self._untrack(trial._trial_id)
        done = self._record(plan, trial)
        spread = done.user_attrs.get(FOLD_STD) or []
        shown = ", ".join(f"{m}={v:.4f} +- {sd:.4f}" for m, v, sd in zip(plan.metrics, done.values or [], spread,
                                                                         strict=False))
        after = done.user_attrs.get(PRUNED_AFTER_FOLD)
        log.info("trial %d %s in %.0fs: %s", done.number, done.state.name, seconds,
                 shown or f"after fold {after} of {self.s.folds} (running mean {done.intermediate_values[after]:.4f})")

    def _untrack(self, trial_id: int) -> None:
        self.in_flight.pop(trial_id, None)
        if self.heartbeat is not None:
            self.heartbeat.discard(trial_id)

    def _finish_fail(self, study, trial, kind: str, message: str) -> None:
        import optuna
        from optuna.trial import TrialState

        try:
            trial.set_user_attr(FAIL_KIND, kind)
            trial.set_user_attr(ERROR, message)
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
        finally:
            self._untrack(trial._trial_id)

    def _interrupted(self, plan: Plan, trial) -> None:
        self._finish_fail(plan.study, trial, "interrupted", "the sweep was interrupted during this trial")
        frozen = plan.study._storage.get_trial(trial._trial_id)
        if frozen.state.name == "FAIL":
            recovery.requeue(plan.study, frozen, reason="interrupted")

    def _tell(self, plan: Plan, trial, ret, seconds: float) -> None:
        import optuna
        from hydra.core.utils import JobStatus
        from optuna.trial import TrialState

        study = plan.study
        run_dir = None
        try:
            run_dir = str(ret.hydra_cfg.hydra.runtime.output_dir) if ret is not None and ret.hydra_cfg else None
        except Exception:
            run_dir = None
        try:
            if run_dir:
                trial.set_user_attr(RUN_DIR, run_dir)
            frozen = study._storage.get_trial(trial._trial_id)
            if frozen.state.is_finished():
                log.warning("trial %d was already marked %s by another worker; its result is dropped",
                            trial.number, frozen.state.name)
                return
            if ret is None:
                self._finish_fail(study, trial, "error", "the launcher returned no result for this trial")
            elif ret.status == JobStatus.COMPLETED:
                values, problem = self._values(plan, ret._return_value)
                if problem:
                    self._finish_fail(study, trial, "error", problem)
                else:
                    study.tell(trial, values)
            else:
                err = getattr(ret, "_return_value", None)
                if isinstance(err, optuna.TrialPruned) or PRUNED_AT in frozen.user_attrs:
                    study.tell(trial, state=TrialState.PRUNED)
                else:
                    self._finish_fail(study, trial, "error", one_line(err) if err else "the job failed")
        finally:
            self._untrack(trial._trial_id)
        done = self._record(plan, trial, run_dir)
        shown = ", ".join(f"{m}={v:.4f}" for m, v in zip(plan.metrics, done.values or [], strict=False))
        detail = shown or done.user_attrs.get(ERROR, "")
        if done.state == TrialState.PRUNED:
            detail = f"after epoch {done.user_attrs.get(PRUNED_AT)}" + (f" ({shown})" if shown else "")
        log.log(logging.WARNING if done.state == TrialState.FAIL else logging.INFO, "trial %d %s in %.0fs: %s",
                done.number, done.state.name, seconds, detail)

    def _record(self, plan: Plan, trial, run_dir: str | None = None):
        """The finished trial as stored, after writing it to its run dir's trial.yaml (over the job's RUNNING)."""
        done = plan.study._storage.get_trial(trial._trial_id)
        results.write_trial_record(done, plan.study_name, run_dir)
        return done

    def _values(self, plan: Plan, value) -> tuple[list[float] | None, str | None]:
        if value is None:
            return None, "the job returned nothing; set optimized_metric"
        values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        if len(values) != len(plan.directions):
            return None, (f"the job returned {len(values)} value(s) but the study has {len(plan.directions)} "
                          f"direction(s)")
        out = []
        for name, v in zip(plan.metrics, values, strict=True):
            try:
                v = float(v)
            except (TypeError, ValueError):
                return None, f"{name}={v!r} is not a number"
            if not math.isfinite(v):
                return None, f"{name} is {v} (e.g. a label without positives in the validation split)"
            out.append(v)
        return out, None

    def _write(self, plan: Plan) -> None:
        try:
            results.write_results(plan.study, plan.sweep_dir, {"storage": masked(plan.url)}, plan.metrics)
        except Exception as err:  # results are a convenience; never lose the sweep over them
            log.warning("could not write sweep results: %s", one_line(err))
