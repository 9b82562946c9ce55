"""`python train.py -m ...` sweeps end to end, on the tiny backbone and a few hundred synthetic rows.

Each test runs real training jobs in subprocesses (with MODLAB_ROOT = tmp_path), so it is what a user
runs: a sweep that writes its study and results, a SIGKILLed sweep resumed by the same command, pruning
(in the sweeper's process and in job processes), a raising trial, two workers on one SQLite study,
a multi-objective sweep, and the one-line errors for bad input.
"""

from __future__ import annotations

import io
import json
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
FAST = ["backbone.tiny=true", "dataset.reader.size=300", "callbacks.progress_bar=null", "data.max_length=32",
        "logger=none", "trainer.max_epochs=1", "report.enabled=false", "test=false"]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def env(tmp_path) -> dict[str, str]:
    return {**os.environ, "MODLAB_ROOT": str(tmp_path), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
            "TOKENIZERS_PARALLELISM": "false", "HYDRA_FULL_ERROR": "0"}


def command(*overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "-m", *FAST, *overrides]


def sweep(tmp_path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(command(*overrides), cwd=ROOT, env=env(tmp_path), capture_output=True, text=True,
                          timeout=timeout)
    (tmp_path / "last_sweep.log").write_text(proc.stdout + proc.stderr)
    return proc


def load(tmp_path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/outputs/optuna/{name}.db")


def by_state(study, *states) -> list:
    return [t for t in study.get_trials(deepcopy=False) if t.state in states]


def ok(proc) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def assert_pruned_by_the_median_rule(study, out: str) -> None:
    """Trials run one after another; trial 0 is the start-up trial. Each later one is pruned at step 0 exactly
    when its first value is below the median of the first values of the trials completed before it. The rule,
    not a fixed outcome: whether a trial that learns nothing scores above one that learns a little on ~100 val
    rows is chance. The sampler repeats trial 0's lr as trial 2, so one of trials 1 and 2 is always pruned."""
    states = [t.state for t in study.trials]
    assert states[0] == TrialState.COMPLETE and states.count(TrialState.PRUNED) == 1, (states, out[-3000:])
    first = [t.intermediate_values[0] for t in study.trials]
    for i in range(1, len(first)):
        done = [first[j] for j in range(i) if states[j] == TrialState.COMPLETE]
        assert (states[i] == TrialState.PRUNED) == (first[i] < statistics.median(done)), (i, first, states)


def test_sweep_writes_study_best_params_and_trial_records(tmp_path):
    out = ok(sweep(tmp_path, "hparams_search=focal", "hydra.sweeper.n_trials=2", "hydra.sweeper.pruner=none"))
    study = load(tmp_path, "focal")
    assert len(by_state(study, TrialState.COMPLETE)) == 2
    sweep_dir = tmp_path / "outputs" / "train" / "sweeps" / "focal"
    saved = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert saved.best_value == pytest.approx(study.best_value)
    assert set(saved.best_params) == {"optim.lr", "optim.warmup_ratio", "optim.weight_decay", "loss.gamma",
                                      "loss.alpha"}
    best_dir = sweep_dir / f"trial_{study.best_trial.number}"
    assert (sweep_dir / "best").resolve() == Path(saved.best_run_dir).resolve() == best_dir.resolve()
    for t in study.trials:
        record = OmegaConf.load(sweep_dir / f"trial_{t.number}" / "trial.yaml")
        assert record.number == t.number and dict(record.params) == t.params and record.state == "COMPLETE"
        assert record.study_name == "focal" and list(record["values"]) == t.values
        assert record.started and record.finished and "error" not in record
        config = OmegaConf.load(sweep_dir / f"trial_{t.number}" / "config.yaml")
        assert config.optuna.trial_number == t.number and config.optuna.study_name == "focal"
        assert config.optim.lr == pytest.approx(t.params["optim.lr"]) and config.loss._target_.endswith("FocalLoss")
        assert t.intermediate_values and t.user_attrs["epochs"] == 1
    assert "trial  state     val/auroc_macro" in out  # the summary table
    dashboard_opens(tmp_path / "outputs" / "optuna" / "focal.db", "focal")


def dashboard_opens(db: Path, name: str) -> None:
    """optuna-dashboard (if installed) serves the study: GET /api/studies through its WSGI app."""
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        return
    from wsgiref.util import setup_testing_defaults

    app = wsgi(f"sqlite:///{db}")
    environ = {"PATH_INFO": "/api/studies", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, h, *a: status.append(s) or io.BytesIO().write))
    assert status[0].startswith("200"), status
    assert name in [s["study_name"] for s in json.loads(body)["study_summaries"]]


def test_sigkilled_sweep_resumes_to_exactly_n_trials(tmp_path):
    args = ["hparams_search=focal", "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner=none", "trainer.max_epochs=3"]
    kill = "+callbacks.kill_switch"  # SIGKILLs the sweep and its job as trial 1 starts its second epoch
    first = subprocess.run(
        command(*args, f"{kill}._target_=kill_switch.KillSweepAt", f"{kill}.trial=1",
                f"{kill}.this_trial=${{optuna.trial_number}}"),
        cwd=ROOT, env={**env(tmp_path), "PYTHONPATH": str(ROOT / "tests")}, capture_output=True, text=True,
        timeout=300, start_new_session=True)
    assert first.returncode == -signal.SIGKILL, first.stdout[-3000:] + first.stderr[-3000:]
    (_, killed, *rest) = load(tmp_path, "focal").trials
    assert not rest and killed.state == TrialState.RUNNING  # left behind by the dead process
    assert killed.user_attrs["epochs"] == 1
    killed_record = tmp_path / "outputs" / "train" / "sweeps" / "focal" / "trial_1" / "trial.yaml"
    record = OmegaConf.load(killed_record)  # written by the job as it started: the dir says what it is
    assert (record.number, record.state, dict(record.params)) == (1, "RUNNING", killed.params)
    assert record.finished is None

    ok(sweep(tmp_path, *args))  # the same command again
    study = load(tmp_path, "focal")
    assert len(by_state(study, TrialState.COMPLETE)) == 3
    (stale,) = by_state(study, TrialState.FAIL)
    assert stale.number == 1 and stale.user_attrs["fail_kind"] == "died"
    retry = [t for t in study.trials if t.system_attrs.get("modlab:retry_of") == 1]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == stale.params
    assert not by_state(study, TrialState.RUNNING, TrialState.WAITING)
    assert by_state(study, TrialState.COMPLETE)[0].number == 0  # trial 0 was kept, not repeated
    record = OmegaConf.load(killed_record)  # the resume found it dead and said so
    assert record.state == "FAIL" and "died" in record.error and record.finished


@pytest.mark.parametrize("launcher", ["modlab_process", "submitit_local", pytest.param("basic", marks=pytest.mark.slow)])
def test_pruning_stops_hopeless_trials(tmp_path, launcher):
    """Once trial 0 has completed, a trial whose first epoch of two scores below the median is pruned after that
    epoch. Random sampler, seed 2: lr = 1e-3, 1.0 (with the head at the same lr: it learns nothing), 1e-3.
    Jobs run in their own processes (modlab_process: forked; submitit_local: hydra-submitit-launcher's local
    executor, the SLURM launcher's code path without SLURM) or in the sweeper's (basic, the same path the SIGKILL
    test and the pruning-callback unit test cover)."""
    out = ok(sweep(
        tmp_path, "hydra/sweeper=modlab_optuna", f"hydra/launcher={launcher}", "hydra.sweeper.study_name=prune",
        "optim.lr=choice(0.001,1.0)", "optim.head_lr=null", "trainer.max_epochs=2", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler=random", "hydra.sweeper.seed=2",
        "hydra.sweeper.pruner=median", "++hydra.sweeper.pruner_args={n_startup_trials:1,n_warmup_steps:0}",
    ))
    study = load(tmp_path, "prune")
    assert [t.params["optim.lr"] for t in study.trials] == [0.001, 1.0, 0.001]
    assert_pruned_by_the_median_rule(study, out)
    for t in study.trials:
        assert OmegaConf.load(Path(t.user_attrs["run_dir"]) / "trial.yaml").state == t.state.name
        if t.state == TrialState.PRUNED:  # stopped at once: one epoch of two
            assert t.user_attrs["pruned_at_epoch"] == 0 and t.user_attrs["epochs"] == 1
            assert list(t.intermediate_values) == [0]
        else:
            assert t.user_attrs["epochs"] == 2
    job_pids = {t.user_attrs["job_pid"].split(":")[1] for t in study.trials}
    sweeper_pid = str(study.trials[0].system_attrs["modlab:worker"]["pid"])
    if launcher != "basic":
        assert sweeper_pid not in job_pids and len(job_pids) == 3  # one process per trial
    else:
        assert job_pids == {sweeper_pid}


def test_cross_validated_trials_optimize_the_fold_mean_and_prune_after_a_fold(tmp_path):
    """hydra.sweeper.folds=3: each trial trains folds 0-2 and is told their mean (std stored beside it); a trial
    whose first fold falls below the median of the completed trials' first folds is pruned after that fold."""
    out = ok(sweep(
        tmp_path, "hydra/sweeper=modlab_optuna", "hydra.sweeper.study_name=cv", "hydra.sweeper.folds=3",
        "optim.lr=choice(0.001,1.0)", "optim.head_lr=null", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler=random",
        "hydra.sweeper.seed=2", "hydra.sweeper.pruner=median",
        "++hydra.sweeper.pruner_args={n_startup_trials:1,n_warmup_steps:0}",
    ))
    study = load(tmp_path, "cv")
    assert [t.params["optim.lr"] for t in study.trials] == [0.001, 1.0, 0.001]
    assert_pruned_by_the_median_rule(study, out)
    sweep_dir = next((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    for t in study.trials:
        folds = [v[0] for v in t.user_attrs["fold_values"]]
        running = [sum(folds[:i + 1]) / (i + 1) for i in range(len(folds))]
        assert list(t.intermediate_values.values()) == pytest.approx(running)
        for fold, value in enumerate(folds):  # each fold is its own run dir, with its fold's splits
            run_dir = sweep_dir / str(t.number * 3 + fold)
            assert json.loads((run_dir / "metrics.json").read_text())["val/auroc_macro"] == pytest.approx(value)
            assert json.loads((run_dir / "splits.json").read_text())["folds"] == {"k": 3, "fold": fold, "seed": 42}
        if t.state == TrialState.PRUNED:
            assert len(folds) == 1 and t.user_attrs["pruned_after_fold"] == 0
        else:
            assert len(folds) == 3 and t.value == pytest.approx(statistics.fmean(folds))
            assert t.user_attrs["fold_std"][0] == pytest.approx(statistics.stdev(folds))
    saved = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert saved.best_std == pytest.approx(study.best_trial.user_attrs["fold_std"][0])
    assert "val/auroc_macro  std" in out and "folds" in out  # the summary table shows mean, std and folds


def test_raising_trial_does_not_stop_the_sweep(tmp_path):
    """data.max_length=100000 raises (a ModlabError before training); random seed 1 draws 100000, then 32."""
    ok(sweep(tmp_path, "hydra/sweeper=modlab_optuna", "hydra.sweeper.study_name=raise", "data.max_length=choice(32,100000)",
             "hydra.sweeper.n_trials=1", "hydra.sweeper.sampler=random", "hydra.sweeper.seed=1",
             "hydra.sweeper.pruner=none", "hydra.sweeper.max_failure_rate=0.5"))
    study = load(tmp_path, "raise")
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    failed = study.trials[0]
    assert failed.params["data.max_length"] == 100000 and "exceeds" in failed.user_attrs["error"]
    assert failed.user_attrs["fail_kind"] == "error"


def test_two_workers_share_one_study(tmp_path):
    args = ["hparams_search=focal", "hydra.sweeper.n_trials=4", "hydra.sweeper.pruner=none"]
    workers = [subprocess.Popen(command(*args), cwd=ROOT, env=env(tmp_path), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    study = load(tmp_path, "focal")
    done = by_state(study, TrialState.COMPLETE)
    assert len(done) == 4 and len({t.number for t in done}) == 4
    assert len({tuple(t.params.values()) for t in done}) == 4  # different points, not the same draws twice
    assert not by_state(study, TrialState.RUNNING, TrialState.WAITING)
    assert all(t.user_attrs.get("fail_kind") == "surplus" for t in by_state(study, TrialState.FAIL))
    assert len({t.system_attrs["modlab:worker"]["pid"] for t in done}) == 2  # both workers ran trials


@pytest.mark.slow  # the Pareto output is unit-tested with a fake launcher; this adds the real latency objective
def test_multi_objective_sweep_reports_the_pareto_set(tmp_path):
    ok(sweep(tmp_path, "hydra/sweeper=modlab_optuna", "hydra.sweeper.study_name=pareto", "head=choice(cls,attention)",
             "optimized_metric=[val/auroc_macro,model/latency_ms]", "hydra.sweeper.direction=[maximize,minimize]",
             "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler=random", "hydra.sweeper.seed=2"))
    study = load(tmp_path, "pareto")
    assert len(by_state(study, TrialState.COMPLETE)) == 2 and study.metric_names == ["val/auroc_macro",
                                                                                     "model/latency_ms"]
    (sweep_dir,) = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    saved = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert [p.trial for p in saved.pareto_front] == [t.number for t in study.best_trials]
    metrics = json.loads((Path(saved.pareto_front[0].run_dir) / "metrics.json").read_text())
    assert metrics["model/latency_ms"] > 0 and metrics["model/params"] > 0


@pytest.mark.parametrize("overrides, message", [
    (["hydra/sweeper=modlab_optuna", "optim.lrr=interval(1e-5,1e-3)"],
     "unknown parameter path 'optim.lrr' in the search space; did you mean 'optim.lr'?"),
    (["hparams_search=focal", "optim.lr=tag(log,interval(0,1))"], "`low > 0` must hold for `log=True`"),
    (["hparams_search=focal", "hydra.sweeper.direction=[maximize,minimize]"],
     "direction has 2 entries ['maximize', 'minimize'] but optimized_metric returns 1 value(s)"),
    (["hparams_search=focal", "hydra.sweeper.storage=postgresql://sweeper@127.0.0.1:1/studies"],
     "storage postgresql://sweeper@127.0.0.1:1/studies"),
    (["hparams_search=focal", "hydra.sweeper.study_name=../../../x"],
     "hydra.sweeper.study_name='../../../x' becomes a directory or file name"),
    (["hparams_search=focal", "hydra.sweeper.folds=1"], "hydra.sweeper.folds=1 must be an integer >= 2"),
    (["hparams_search=focal", "hydra.sweeper.folds=3", "data.fold=1"],
     "hydra.sweeper.folds=3 sets data.folds and data.fold of every job; drop data.fold=1"),
])
def test_bad_input_is_one_line_before_any_trial(tmp_path, overrides, message):
    proc = sweep(tmp_path, *overrides, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not list((tmp_path / "outputs").rglob("config.yaml"))  # no trial started
    assert {p.name for p in tmp_path.iterdir()} <= {"outputs", "last_sweep.log"}  # nothing outside outputs/


def test_slurm_launcher_config_composes_onto_submitit():
    """conf/hydra/launcher/slurm.yaml: hydra-submitit-launcher's SLURM launcher with modlab's defaults."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", "hydra.launcher.partition=cpu"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.cpus_per_task, launcher.array_parallelism) == ("cpu", 8, 16)
    assert launcher.setup == ["export TOKENIZERS_PARALLELISM=false"]
