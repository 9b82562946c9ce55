"""What a sweep leaves behind: best params (or the Pareto set) as YAML, a `best` link, a summary table.

`<sweep_dir>/optimization_results.yaml` is rewritten after every trial (atomically; parallel workers each
write the whole study's state), so a crashed sweep still shows what it had found. Each trial's run dir holds
`trial.yaml`: written RUNNING by the job as training starts, rewritten COMPLETE / PRUNED / FAIL when the trial
ends, and FAIL by whichever sweeper finds the trial's process dead, so a killed trial's dir says what it is.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from modlab.io import atomic_write_text
from modlab.sweep.attrs import EPOCHS, ERROR, FOLD_STD, FOLD_VALUES, PRUNED_AFTER_FOLD, RUN_DIR

log = logging.getLogger(__name__)

RESULTS = "optimization_results.yaml"
TRIAL_RECORD = "trial.yaml"


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return value


def trial_record(t, study_name: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if study_name:
        record["study_name"] = study_name
    record.update({
        "number": t.number,
        "state": t.state.name,
        "values": [_plain(v) for v in t.values] if t.values else None,
        "params": {k: _plain(v) for k, v in t.params.items()},
        "epochs": t.user_attrs.get(EPOCHS),
        "run_dir": t.user_attrs.get(RUN_DIR),
    })
    for key in (FOLD_VALUES, FOLD_STD, PRUNED_AFTER_FOLD):  # cross-validated trials (hydra.sweeper.folds)
        if t.user_attrs.get(key) is not None:
            record[key] = t.user_attrs[key]
    if t.user_attrs.get(ERROR):
        record["error"] = t.user_attrs[ERROR]
    record["started"] = _time(t.datetime_start)
    record["finished"] = _time(t.datetime_complete)
    if t.datetime_start and t.datetime_complete:
        record["duration_s"] = round((t.datetime_complete - t.datetime_start).total_seconds(), 1)
    return record


def _time(moment) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def best_trials(study) -> list:
    """The best trial (one objective) or the Pareto-optimal trials (several); [] before any completes."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    if len(study.directions) == 1:
        return [study.best_trial]
    return sorted(study.best_trials, key=lambda t: t.number)


def summary(study, metric_names: list[str] | None = None) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    names = metric_names or [f"value{i}" for i in range(len(study.directions))]
    out: dict[str, Any] = {
        "study_name": study.study_name,
        "directions": [d.name.lower() for d in study.directions],
        "metrics": names,
        "trials": counts,  # by state
        "epochs_trained": sum(int(t.user_attrs.get(EPOCHS) or 0) for t in trials),
    }
    best = best_trials(study)
    if len(study.directions) == 1:
        if best:
            b = best[0]
            if b.user_attrs.get(FOLD_STD):
                out["best_std"] = b.user_attrs[FOLD_STD][0]
            out.update({"best_trial": b.number, "best_value": _plain(b.value),
                        "best_params": {k: _plain(v) for k, v in b.params.items()},
                        "best_run_dir": b.user_attrs.get(RUN_DIR)})
    else:
        out["pareto_front"] = [
            {"trial": t.number, "values": dict(zip(names, map(_plain, t.values), strict=False)),
             "params": {k: _plain(v) for k, v in t.params.items()}, "run_dir": t.user_attrs.get(RUN_DIR)}
            for t in best
        ]
        if best:
            out["best_run_dir"] = best[0].user_attrs.get(RUN_DIR)
    return out


def _link_best(sweep_dir: Path, run_dir: str | None) -> None:
    if not run_dir or not Path(run_dir).is_dir():
        return
    link = sweep_dir / "best"
    target = os.path.relpath(run_dir, sweep_dir)
    tmp = sweep_dir / f".best.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)


def write_results(study, sweep_dir: str | Path, extra: dict[str, Any] | None = None,
                  metric_names: list[str] | None = None) -> dict[str, Any]:
    sweep_dir = Path(sweep_dir)
    result = {"name": "optuna", **summary(study, metric_names), **(extra or {})}
    atomic_write_text(sweep_dir / RESULTS, OmegaConf.to_yaml(OmegaConf.create(result)))
    _link_best(sweep_dir, result.get("best_run_dir"))
    return result


def write_trial_record(t, study_name: str, run_dir: str | None = None, error: str | None = None) -> Path | None:
    """`<run_dir>/trial.yaml` for the frozen trial `t` (run dir: the one its job recorded), when that dir is here.

    A trial that ran on another machine has no dir on this one: nothing is written. `error` says why a trial
    failed when the study cannot record it (Optuna fails a trial without a heartbeat itself)."""
    run_dir = run_dir or t.user_attrs.get(RUN_DIR)
    if not run_dir or not Path(run_dir).is_dir():
        return None
    record = trial_record(t, study_name)
    if error:
        record["error"] = error
    try:
        return atomic_write_text(Path(run_dir) / TRIAL_RECORD, OmegaConf.to_yaml(OmegaConf.create(record)))
    except OSError as err:  # the record is a convenience: never fail a trial or a recovery over it
        log.warning("trial %d: could not write %s: %s", t.number, Path(run_dir) / TRIAL_RECORD, err)
        return None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def summary_table(study, metric_names: list[str] | None = None, limit: int = 100) -> str:
    """Trials by number: state, objective value(s), epochs, params; best first line marked with '*'."""
    trials = study.get_trials(deepcopy=False)
    names = metric_names or [f"value{i}" for i in range(len(study.directions))]
    best = {t.number for t in best_trials(study)}
    param_names = sorted({k for t in trials for k in t.params})
    folds = any(t.user_attrs.get(FOLD_VALUES) for t in trials)  # cross-validated: mean +- std over folds
    header = ["trial", "state", *names, *(["std", "folds"] if folds else ["epochs"]), *param_names]
    rows = []
    for t in trials[-limit:]:
        values = list(t.values) if t.values else [None] * len(names)
        spread = ([_fmt((t.user_attrs.get(FOLD_STD) or [None])[0]), _fmt(len(t.user_attrs.get(FOLD_VALUES) or []))]
                  if folds else [_fmt(t.user_attrs.get(EPOCHS))])
        rows.append([f"{t.number}{'*' if t.number in best else ''}", t.state.name, *map(_fmt, values), *spread,
                     *(_fmt(t.params.get(p)) for p in param_names)])
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, ["-" * w for w in widths], *rows]]
    if len(trials) > limit:
        lines.insert(2, f"... {len(trials) - limit} earlier trials not shown")
    return "\n".join(lines)
