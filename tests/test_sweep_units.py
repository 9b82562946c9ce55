"""The sweeper's parts without training: search-space syntax, checks, samplers, the ask/tell loop, recovery.

The loop runs against a fake launcher (values computed from the overrides), so every sampler, failure
path and the Pareto output are exercised in seconds.
"""

from __future__ import annotations

import json
import math
import os
import time
import types
from pathlib import Path

import numpy as np
import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import OmegaConf, open_dict
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from modlab.errors import ModlabError
from modlab.sweep import factory, recovery, results
from modlab.sweep.attrs import EPOCHS, FAIL_KIND, PRUNED_AT, RETRY_OF, RUN_DIR, WORKER
from modlab.sweep.process_launcher import ProcessLauncher
from modlab.sweep.pruning import OptunaPruning
from modlab.sweep.runner import SweepRunner, allowed_failures, check_paths
from modlab.sweep.settings import SweeperSettings
from modlab.sweep.space import parse_search_space, render
from modlab.sweep.storage import default_url, masked, open_storage
from modlab.sweep.sweeper import OptunaSweeper

ROOT = Path(__file__).resolve().parents[1]
optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- package layout -----------------------------------------------------------------------------------------

def test_nothing_in_modlab_imports_the_plugin_shim():
    """The shim imports modlab.sweep, never the other way round (Hydra re-executes the shim when it scans)."""
    import ast

    upward = []
    for path in sorted((ROOT / "src" / "modlab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            upward += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.split(".")[0] == "hydra_plugins"]
    assert upward == []


def test_registered_targets_are_names_hydra_accepts():
    """Hydra refuses a plugin `_target_` outside `hydra_plugins`; the shim's classes are modlab.sweep's own."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    import hydra_plugins.modlab_optuna_sweeper as shim

    for group, plugin, base in (("hydra/sweeper/modlab_optuna", shim.ModlabOptunaSweeper, OptunaSweeper),
                                ("hydra/launcher/modlab_process", shim.ModlabProcessLauncher, ProcessLauncher)):
        target = ConfigStore.instance().load(f"{group}.yaml").node._target_
        assert Plugins.is_in_toplevel_plugins_module(target) and target == f"{plugin.__module__}.{plugin.__name__}"
        assert plugin.__bases__ == (base,) and not [k for k, v in vars(plugin).items() if callable(v)]


@pytest.mark.parametrize(("value", "status", "expect"), [
    (np.float32(0.75), "COMPLETED", 0.75), ((np.float64(0.5), 3), "COMPLETED", [0.5, 3]), (None, "COMPLETED", None),
    (float("nan"), "COMPLETED", "nan"), (object(), "COMPLETED", "repr"),
    (optuna.TrialPruned("at epoch 0"), "FAILED", optuna.TrialPruned), (ModlabError("data.max_length too big"),
                                                                      "FAILED", "data.max_length too big"),
    (ValueError("bad\n  thing"), "FAILED", "ValueError: bad thing")])
def test_a_job_return_crosses_the_pipe_as_json(value, status, expect):
    """modlab_process jobs answer in JSON, never a pickle: what the sweeper reads of a JobReturn survives."""
    from modlab.errors import one_line
    from modlab.sweep.process_launcher import _job_return, _message

    sent = JobReturn(overrides=["optim.lr=0.1"], status=JobStatus[status], _return_value=value)
    sent.hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": "/runs/3"}}})
    message = _message(sent)
    got = _job_return(message)
    json.loads(message)  # plain JSON
    assert got.status == sent.status and got.overrides == ["optim.lr=0.1"]
    assert got.hydra_cfg.hydra.runtime.output_dir == "/runs/3"
    if expect is optuna.TrialPruned:
        assert isinstance(got._return_value, optuna.TrialPruned)
    elif isinstance(value, BaseException):
        assert isinstance(got._return_value, ModlabError) and one_line(got._return_value) == expect
    elif expect == "nan":
        assert np.isnan(got._return_value)
    elif expect == "repr":
        assert got._return_value.startswith("<object object")
    else:
        assert got._return_value == expect


# --- search space -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("interval(0.1, 0.5)", FloatDistribution(0.1, 0.5)),
    ("int(interval(8, 64))", IntDistribution(8, 64)),
    ("tag(log, interval(1e-5, 1e-3))", FloatDistribution(1e-5, 1e-3, log=True)),
    ("tag(log, int(interval(1, 128)))", IntDistribution(1, 128, log=True)),
    ("range(1, 5)", IntDistribution(1, 4)),
    ("range(0, 10, 3)", IntDistribution(0, 9, step=3)),
    ("range(0.0, 0.3, 0.1)", FloatDistribution(0.0, 0.2, step=0.1)),
    ("choice(minilm, mpnet)", CategoricalDistribution(["minilm", "mpnet"])),
    ("null,0.25,0.5", CategoricalDistribution([None, 0.25, 0.5])),
    ("choice(true, false)", CategoricalDistribution([True, False])),
    ("shuffle(range(3))", None),  # categorical over 0, 1, 2 in some order
])
def test_space_syntax_parses_into_optuna_distributions(text, expected):
    space = parse_search_space({"some.key": text})
    dist = space.params["some.key"].distribution
    if expected is None:
        assert isinstance(dist, CategoricalDistribution) and sorted(dist.choices) == [0, 1, 2]
    else:
        assert dist == expected
    assert space.fixed == []


def test_space_overrides_round_trip_and_command_line_wins():
    space = parse_search_space(
        {"optim.lr": "tag(log, interval(1e-5, 1e-3))", "backbone": "choice(minilm, mpnet)", "loss.alpha": "null,0.25",
         "+extra.key": "choice('a b', [1,2])", "trainer.max_epochs": 3, "optim": {"warmup_ratio": "interval(0, 0.2)"}},
        cli_overrides=["hparams_search=focal", "optim.lr=1e-4", "head=choice(cls, mean)"],
    )
    assert set(space.params) == {"backbone", "loss.alpha", "extra.key", "optim.warmup_ratio", "head"}
    assert space.fixed == ["trainer.max_epochs=3", "hparams_search=focal", "optim.lr=1e-4"]
    ov = space.overrides({"backbone": "mpnet", "loss.alpha": None, "extra.key": "[1,2]", "optim.warmup_ratio": 0.1,
                          "head": "cls"})
    assert ov == ["backbone=mpnet", "loss.alpha=null", "+extra.key=[1,2]", "optim.warmup_ratio=0.1", "head=cls"]
    assert space.params["extra.key"].override("a b") == "+extra.key='a b'"


@pytest.mark.parametrize("value", ["true", "null", "3", "a b", "it's", "x=y", "sqlite:////tmp/a b/x.db", 1e-5, None,
                                   True, 7, "val/auroc_macro"])
def test_render_parses_back_to_the_same_value(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([f"k={render(value)}"])[0].value()
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("text, message", [
    ("interval(1)", "cannot parse"),
    ("uniform(1, 2)", "Unknown function 'uniform'"),
    ("interval(5, 1)", "low <= high"),
    ("tag(log, interval(0, 1))", "low > 0"),
    ("tag(log, choice(1, 2))", "interval() only"),
    ("tag(fast, interval(0, 1))", "unknown tag 'fast'"),
    ("range(5, 1)", "is empty"),
    ("choice(a, a)", "repeated"),
])
def test_malformed_distributions_are_one_line_errors(text, message):
    with pytest.raises(ModlabError) as err:
        parse_search_space({"optim.lr": text})
    assert message in str(err.value) and "\n" not in str(err.value) and "optim.lr" in str(err.value)


# --- checks against the composed config ---------------------------------------------------------------------

def compose_master(tmp_path, *overrides):
    """The multirun master config (with hydra node) and its config loader, as the sweeper gets them."""
    import hydra_plugins.modlab_optuna_sweeper  # noqa: F401  (registers hydra/sweeper=modlab_optuna)

    GlobalHydra.instance().clear()
    initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3")
    cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.hydra.runtime.output_dir = str(tmp_path / "out")
        cfg.hydra.sweep.dir = str(tmp_path / "sweep")
    HydraConfig.instance().set_config(cfg)
    return cfg, GlobalHydra.instance().config_loader()


@pytest.fixture
def master(tmp_path):
    yield lambda *o: compose_master(tmp_path, *o)
    GlobalHydra.instance().clear()


def test_unknown_path_and_unknown_group_option_are_named(master):
    cfg, loader = master()
    check_paths(parse_search_space({"optim.lr": "interval(1e-5, 1e-3)", "backbone": "choice(minilm, mpnet)"}), cfg,
                loader)
    with pytest.raises(ModlabError, match=r"unknown parameter path 'optim.lrr'.*did you mean 'optim.lr'"):
        check_paths(parse_search_space({"optim.lrr": "interval(1e-5, 1e-3)"}), cfg, loader)
    with pytest.raises(ModlabError, match="'bert' is not an option of config group 'backbone'"):
        check_paths(parse_search_space({"backbone": "choice(minilm, bert)"}), cfg, loader)
    with pytest.raises(ModlabError, match="config group; search it with choice"):
        check_paths(parse_search_space({"loss": "interval(0, 1)"}), cfg, loader)
    check_paths(parse_search_space({"+brand.new": "interval(0, 1)"}), cfg, loader)


def test_samplers_and_pruners_by_name():
    for name in factory.SAMPLERS:
        if name == "cmaes" and not _has("cmaes"):
            continue
        assert factory.build_sampler(name, 0, {}) is not None
    for name in factory.PRUNERS:
        pruner = factory.build_pruner(factory.pruner_spec(name, {}, max_epochs=4))
        assert type(pruner).__name__ == factory.PRUNERS[name]
    assert factory.pruner_spec("hyperband", {}, 6)["max_resource"] == 6
    assert factory.select_args({"tpe": {"n_startup_trials": 3}, "random": {}}, "tpe", factory.SAMPLERS) == {
        "n_startup_trials": 3}
    assert factory.select_args({"median": {"n_startup_trials": 5, "n_warmup_steps": 1}, "n_warmup_steps": 0},
                               "median", factory.PRUNERS) == {"n_startup_trials": 5, "n_warmup_steps": 0}
    with pytest.raises(ModlabError, match="no argument 'patience'"):
        factory.pruner_spec("median", {"patience": 3}, 4)
    with pytest.raises(ModlabError, match="unknown; choose one of"):
        factory.build_sampler("bayes", 0, {})


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


# --- the loop, with a fake launcher -------------------------------------------------------------------------

class FakeLauncher:
    """Runs `objective(params)` for each job; an exception it raises becomes the job's failure. Each job gets
    a run dir `<sweep_dir>/trial_<n>`, which its JobReturn names as Hydra's would, and starts as a real job
    does: its pruning callback records the run dir and writes trial.yaml RUNNING."""

    def __init__(self, objective, sweep_dir=None):
        self.objective, self.jobs, self.sweep_dir = objective, [], sweep_dir

    def launch(self, job_overrides, initial_job_idx):
        out = []
        for overrides in job_overrides:
            self.jobs.append(list(overrides))
            params = {}
            for o in overrides:
                key, _, value = o.lstrip("+").partition("=")
                params[key] = value
            ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
            if self.sweep_dir:
                run_dir = Path(self.sweep_dir) / f"trial_{params['optuna.trial_number']}"
                run_dir.mkdir(parents=True)
                ret.hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(run_dir)}}})
                job_starts(overrides, run_dir)
            try:
                ret.return_value = self.objective(params)
            except Exception as err:
                ret.status, ret.return_value = JobStatus.FAILED, err
            out.append(ret)
        return out


def job_starts(overrides, run_dir) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    trial = {o.key_or_group: o.value()
             for o in OverridesParser.create().parse_overrides([o for o in overrides if o.startswith("+optuna.")])}
    cb = OptunaPruning(trial["optuna.storage"], trial["optuna.study_name"], trial["optuna.trial_id"],
                       "val/auroc_macro", run_dir=str(run_dir))
    cb.setup(types.SimpleNamespace(is_global_zero=True), None, "fit")
    cb.close()


def run_sweep(master, objective, arguments=(), **settings):
    cfg, loader = master(*arguments)
    defaults = {"study_name": "unit", "n_trials": 6, "heartbeat_interval": None, "poll_interval": 0.05,
                "params": {"optim.lr": "tag(log, interval(1e-4, 1e-1))", "head": "choice(cls, mean, attention)"}}
    s = SweeperSettings(**{**defaults, **settings})
    launcher = FakeLauncher(objective, cfg.hydra.sweep.dir)
    runner = SweepRunner(s, cfg, types.SimpleNamespace(config_loader=loader), launcher)
    plan = runner.prepare(list(arguments))
    runner.run(plan)
    return plan, launcher


def quality(p):
    lr = float(p["optim.lr"])
    return 0.9 - abs(math.log10(lr) + 2.5) * 0.1 + (0.02 if p["head"] == "attention" else 0.0)


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "gp", "qmc"])
def test_every_sampler_runs_the_loop_and_writes_best_params(master, tmp_path, sampler):
    if sampler == "cmaes" and not _has("cmaes"):
        pytest.skip("cmaes is not installed")
    args = {"n_startup_trials": 3} if sampler in ("tpe", "gp") else {}
    plan, launcher = run_sweep(master, quality, sampler=sampler, sampler_args={sampler: args}, n_trials=5,
                               pruner="none")
    study = plan.study
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 5
    saved = OmegaConf.load(tmp_path / "sweep" / results.RESULTS)
    assert saved.best_value == pytest.approx(study.best_value) and set(saved.best_params) == {"optim.lr", "head"}
    assert Path(plan.url.removeprefix("sqlite:///")).is_file() and plan.url == default_url(
        tmp_path / "outputs", "unit")
    job = launcher.jobs[0]
    assert "+optuna.study_name=unit" in job and "+optuna.trial_number=0" in job
    assert "+callbacks.optuna_pruning._target_=modlab.sweep.pruning.OptunaPruning" in job


def test_per_trial_seeds_make_workers_draw_different_points(master):
    plan, _ = run_sweep(master, quality, sampler="random", n_trials=4, pruner="none")
    points = [tuple(t.params.values()) for t in plan.study.trials]
    assert len(set(points)) == 4


def test_multi_objective_reports_the_pareto_set(master, tmp_path):
    def two(p):
        return quality(p), {"cls": 1.0, "mean": 1.0, "attention": 2.0}[p["head"]]

    plan, _ = run_sweep(master, two, arguments=["optimized_metric=[val/auroc_macro,model/params]"],
                        direction=["maximize", "minimize"], sampler="random", n_trials=6, pruner="median")
    assert plan.pruner["name"] == "none"  # pruning needs one objective
    saved = OmegaConf.load(tmp_path / "sweep" / results.RESULTS)
    front = saved.pareto_front
    assert front and {t.trial for t in front} == {t.number for t in plan.study.best_trials}
    assert set(front[0]["values"]) == {"val/auroc_macro", "model/params"}


def test_pruned_failed_nan_and_wrong_arity_trials_are_recorded(master):
    calls = iter(range(100))

    def flaky(p):
        i = next(calls)
        if i == 0:
            raise optuna.TrialPruned("pruned after epoch 1")
        if i == 1:
            raise FloatingPointError("training loss is nan at step 3")
        if i == 2:
            return math.nan
        if i == 3:
            return (0.5, 0.1)
        return quality(p)

    plan, _ = run_sweep(master, flaky, n_trials=3, max_failure_rate=0.5, sampler="random")
    states = [t.state for t in plan.study.trials]
    assert states[:4] == [TrialState.PRUNED, TrialState.FAIL, TrialState.FAIL, TrialState.FAIL]
    errors = [t.user_attrs["error"] for t in plan.study.trials[1:4]]
    assert "FloatingPointError: training loss is nan" in errors[0]
    assert "val/auroc_macro is nan" in errors[1] and "returned 2 value(s)" in errors[2]
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) == 3
    for t in plan.study.trials:  # each run dir says how its trial ended
        record = OmegaConf.load(Path(t.user_attrs["run_dir"]) / "trial.yaml")
        assert (record.study_name, record.number, record.state) == ("unit", t.number, t.state.name)
        assert dict(record.params) == t.params and record.started and record.finished
        assert record.get("error") == t.user_attrs.get("error") and record["values"] == t.values


def test_too_many_failures_stop_the_sweep(master, capsys):
    def broken(p):
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(SystemExit) as exit_:
        run_sweep(master, broken, n_trials=4, max_failure_rate=0.2, sampler="random")
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: 2 trials failed, more than max_failure_rate=0.2") and "out of memory" in err
    assert allowed_failures(0.2, 4) == pytest.approx(1.0) and allowed_failures(1.0, 4) == math.inf


def test_resume_continues_and_refuses_a_different_space(master):
    plan, _ = run_sweep(master, quality, n_trials=2, sampler="random")
    plan, launcher = run_sweep(master, quality, n_trials=3, sampler="random")
    assert len(plan.study.trials) == 3 and len(launcher.jobs) == 1
    with pytest.raises(ModlabError, match="another search space"):
        run_sweep(master, quality, n_trials=4, params={"optim.lr": "interval(1e-4, 1e-2)"})
    with pytest.raises(ModlabError, match="already exists with direction"):
        run_sweep(master, quality, n_trials=4, direction="minimize")


def test_ctrl_c_requeues_the_interrupted_trial_for_the_next_run(master):
    calls = iter(range(100))

    def interrupted_second(p):
        if next(calls) == 1:
            raise KeyboardInterrupt
        return quality(p)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(master, interrupted_second, n_trials=3, sampler="random")
    plan, _ = run_sweep(master, quality, n_trials=3, sampler="random")  # the same command again
    trials = plan.study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
                                         TrialState.COMPLETE]
    assert trials[1].user_attrs[FAIL_KIND] == "interrupted"
    assert trials[2].params == trials[1].params and trials[2].system_attrs[RETRY_OF] == 1
    record = OmegaConf.load(Path(trials[1].user_attrs[RUN_DIR]) / "trial.yaml")  # RUNNING when it was stopped
    assert record.state == "FAIL" and record.error == "the sweep was interrupted during this trial"


def test_direction_count_must_match_optimized_metric(master):
    with pytest.raises(ModlabError, match=r"direction has 2 entries .* returns 1 value"):
        run_sweep(master, quality, direction=["maximize", "minimize"])


@pytest.mark.parametrize("key, value", [
    ("study_name", "../../x"), ("study_name", "a/b"), ("study_name", ".."), ("study_name", ""),
    ("study_name", ".hidden"), ("study_name", "-rf"), ("study_name", "x" * 129), ("task_name", "../up"),
])
def test_names_that_become_paths_are_refused_before_any_trial(master, tmp_path, key, value):
    settings, arguments = ({"study_name": value}, ()) if key == "study_name" else ({}, (f"{key}={value}",))
    with pytest.raises(ModlabError) as err:
        run_sweep(master, quality, arguments=arguments, **settings)
    message = str(err.value)
    shown = "hydra.sweeper.study_name" if key == "study_name" else key
    assert message.startswith(f"{shown}={value!r} becomes a directory or file name: use 1-128 letters") and (
        "\n" not in message)
    assert not list(tmp_path.rglob("*.db")) and not (tmp_path / "sweep").exists()  # nothing written


@pytest.mark.parametrize("name", ["focal_v2", "a.b-c", "_x", 7])
def test_plain_names_are_kept_as_given(master, tmp_path, name):
    plan, _ = run_sweep(master, quality, study_name=name, n_trials=1, sampler="random")
    assert plan.study_name == str(name) and plan.url.endswith(f"/optuna/{name}.db")


def test_latency_and_params_objectives():
    import torch

    from modlab.evaluation.objectives import extra_metrics

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 2)

        def forward(self, ids, mask):
            return self.lin(ids.float())

    dm = types.SimpleNamespace(val_dataloader=lambda: [{"input_ids": torch.ones(3, 4), "attention_mask": torch.ones(3, 4)}])
    model = Model().train()
    out = extra_metrics(model, dm, ["val/auroc_macro", "model/latency_ms"])
    assert out["model/params"] == 10 and out["model/latency_ms"] > 0 and model.training
    assert set(extra_metrics(model, dm, "val/auroc_macro")) == {"model/params"}
    empty = types.SimpleNamespace(val_dataloader=lambda: [])
    with pytest.raises(ModlabError, match="validation split is empty"):
        extra_metrics(model, empty, ["val/auroc_macro", "model/latency_ms"])


# --- recovery -----------------------------------------------------------------------------------------------

def _study(tmp_path, **storage_kwargs):
    rdb = open_storage(f"sqlite:///{tmp_path}/r.db", **storage_kwargs)
    return optuna.create_study(storage=rdb, study_name="r", direction="maximize"), rdb


def running_record(tmp_path, study, trial):
    """What a job does as fit starts (the pruning callback): record its run dir and write trial.yaml RUNNING."""
    run_dir = tmp_path / f"trial_{trial.number}"
    run_dir.mkdir()
    cb = OptunaPruning(study._storage._backend.url, study.study_name, trial._trial_id, "val/auroc_macro",
                       run_dir=str(run_dir))
    cb.setup(types.SimpleNamespace(is_global_zero=True), None, "validate")  # after fit: nothing to record
    assert not (run_dir / "trial.yaml").exists()
    cb.setup(types.SimpleNamespace(is_global_zero=True), None, "fit")
    cb.close()
    record = OmegaConf.load(run_dir / "trial.yaml")
    assert (record.study_name, record.number, record.state) == (study.study_name, trial.number, "RUNNING")
    assert dict(record.params) == trial.params and record.started and record.finished is None
    assert study.trials[trial.number].user_attrs[RUN_DIR] == str(run_dir)
    return run_dir


def test_trial_of_a_dead_process_is_failed_and_retried_once(tmp_path):
    study, _ = _study(tmp_path)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    run_dir = running_record(tmp_path, study, trial)
    dead = {"host": recovery.worker_info()["host"], "pid": 2**22 + 12345, "started": None}
    study._storage.set_trial_system_attr(trial._trial_id, WORKER, dead)
    assert recovery.fail_dead_trials(study, own_ids=set()) == [0]
    record = OmegaConf.load(run_dir / "trial.yaml")  # the killed trial's dir says so
    assert record.state == "FAIL" and record.error == f"its sweeper process {dead['pid']} died" and record.finished
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    retry = study.ask()  # the queued copy comes first, with the same point
    assert retry.number == 1 and retry.params == trial.params
    study._storage.set_trial_system_attr(retry._trial_id, WORKER, dead)
    recovery.fail_dead_trials(study, own_ids=set())
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]  # retried once, not twice
    assert study.trials[0].user_attrs[FAIL_KIND] == "died"


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_trial_without_heartbeat_is_failed_and_retried(tmp_path):
    study, rdb = _study(tmp_path, heartbeat_interval=1, grace_period=1,
                        stale_callback=recovery.stale_callback())
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    run_dir = running_record(tmp_path, study, trial)
    beat = recovery.Heartbeat(rdb, 1)
    beat.add(trial._trial_id)  # one beat, then silence: the worker "died"
    time.sleep(2.5)
    recovery.fail_stale_by_heartbeat(study)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    assert study.trials[1].params == trial.params
    record = OmegaConf.load(run_dir / "trial.yaml")
    assert record.state == "FAIL" and "heartbeats" in record.error and record.finished


def test_live_process_and_foreign_host_are_left_alone(tmp_path):
    study, _ = _study(tmp_path)
    for info in (recovery.worker_info(), {"host": "elsewhere", "pid": 1, "started": None}):
        t = study.ask()
        study._storage.set_trial_system_attr(t._trial_id, WORKER, info)
    assert recovery.fail_dead_trials(study, own_ids=set()) == []
    assert recovery.process_alive({"host": "elsewhere", "pid": os.getpid()}) is None


def test_surplus_trial_from_a_race_is_released(master):
    cfg, loader = master()
    s = SweeperSettings(study_name="race", n_trials=1, heartbeat_interval=None, pruner="none",
                        params={"optim.lr": "interval(1e-4, 1e-2)"})
    runner = SweepRunner(s, cfg, types.SimpleNamespace(config_loader=loader), FakeLauncher(quality))
    plan = runner.prepare([])
    runner.heartbeat = recovery.Heartbeat(plan.rdb, None)
    other = plan.study.ask()  # another worker took the only slot a moment earlier
    assert runner._ask(plan, 1) == []
    mine = plan.study.trials[1]
    assert mine.state == TrialState.FAIL and mine.user_attrs[FAIL_KIND] == "surplus"
    assert plan.study.trials[0].number == other.number


def test_storage_errors_are_one_line(tmp_path):
    url = "postgresql://u:secret@127.0.0.1:1/db"
    expected = "cannot reach storage" if _has("psycopg") or _has("psycopg2") else "needs the database driver"
    with pytest.raises(ModlabError, match=expected) as err:
        open_storage(url)
    assert "secret" not in str(err.value) and "postgresql://u:***@127.0.0.1:1/db" in str(err.value)
    with pytest.raises(ModlabError, match="not a database URL"):
        open_storage("outputs/study.db")
    with pytest.raises(ModlabError, match="cannot create the directory"):
        open_storage(f"sqlite:///{tmp_path}/file/sub/x.db") if (tmp_path / "file").write_text("") == 0 else None
    assert masked("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"


# --- the pruning callback -----------------------------------------------------------------------------------

def _trainer(value, epoch):
    return types.SimpleNamespace(sanity_checking=False, state=types.SimpleNamespace(fn=TrainerFn.FITTING),
                                 callback_metrics={"val/auroc_macro": value}, is_global_zero=True, world_size=1,
                                 current_epoch=epoch)


def test_pruning_callback_reports_each_epoch_and_prunes_a_hopeless_trial(tmp_path):
    url = f"sqlite:///{tmp_path}/p.db"
    study = optuna.create_study(storage=url, study_name="p", direction="maximize")
    for good in (0.80, 0.85):
        t = study.ask()
        t.report(good, 0)
        t.report(good + 0.05, 1)
        study.tell(t, good + 0.05)
    trial = study.ask()
    spec = factory.pruner_spec("median", {"n_startup_trials": 1, "n_warmup_steps": 0}, 4)
    cb = OptunaPruning(url, "p", trial._trial_id, "val/auroc_macro", spec)
    cb.on_fit_start(None, None)
    cb.on_validation_end(_trainer(math.nan, 0), None)  # NaN: not reported, no crash
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 1"):
        cb.on_validation_end(_trainer(0.5, 1), None)
    engine = cb._trial.study._storage._backend.engine
    assert engine.pool.checkedin() > 0
    cb.on_exception(None, None, optuna.TrialPruned())  # closes the job's connections (one per trial otherwise)
    assert cb._trial is None and engine.pool.checkedin() == 0
    frozen = study.trials[-1]
    assert frozen.intermediate_values == {1: 0.5}
    assert frozen.user_attrs[PRUNED_AT] == 1 and frozen.user_attrs[EPOCHS] == 2
    test_time = types.SimpleNamespace(**{**vars(_trainer(0.1, 3)), "state": types.SimpleNamespace(fn="validate")})
    cb.on_validation_end(test_time, None)  # after fit (validate/test the best checkpoint): ignored


def test_workers_racing_to_create_the_schema_retry_instead_of_failing(tmp_path, monkeypatch):
    import sqlalchemy.exc

    from modlab.sweep import storage

    real, calls = optuna.storages.RDBStorage, []

    def racing(url, **kwargs):
        calls.append(url)
        if len(calls) == 1:  # what the loser of two fresh workers sees from SQLite
            raise sqlalchemy.exc.IntegrityError("INSERT INTO alembic_version", {},
                                                Exception("UNIQUE constraint failed: alembic_version.version_num"))
        return real(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    opened = storage.open_storage(f"sqlite:///{tmp_path}/race.db")
    assert len(calls) == 2 and opened.get_all_studies() == []


@pytest.mark.parametrize("preset", ["focal", "head_loss", "backbone", "jigsaw_minilm"])
def test_each_fold_of_a_cross_validated_trial_gets_its_own_dir(preset):
    """The presets' trial dirs take the fold the sweeper adds with hydra.sweeper.folds (one dir per fold)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        plain = compose("train", overrides=[f"hparams_search={preset}", "+optuna.trial_number=3"],
                        return_hydra_config=True)
        fold = compose("train", overrides=[f"hparams_search={preset}", "+optuna.trial_number=3",
                                           "+optuna.fold_dir=/fold_2"], return_hydra_config=True)
    for cfg in (plain, fold):
        cfg.hydra.job.num = 7  # set by the launcher for each job
    assert plain.hydra.sweep.subdir == "trial_3" and fold.hydra.sweep.subdir == "trial_3/fold_2"


def test_pruning_callback_of_a_fold_job_records_but_does_not_report(tmp_path):
    url = f"sqlite:///{tmp_path}/p.db"
    study = optuna.create_study(storage=url, study_name="p", direction="maximize")
    trial = study.ask()
    cb = OptunaPruning(url, "p", trial._trial_id, "val/auroc_macro", {"name": "median"}, report=False)
    cb.on_fit_start(None, None)
    cb.on_validation_end(_trainer(0.5, 0), None)
    cb.close()
    frozen = study.trials[-1]
    assert frozen.intermediate_values == {} and frozen.user_attrs[EPOCHS] == 1
