"""The sweeper's and the launcher's settings (`hydra.sweeper.*`, `hydra.launcher.*`) and their registration.

`register()` stores them as Hydra structured configs, `hydra/sweeper=modlab_optuna` and
`hydra/launcher=modlab_process`, so a typo'd key or a wrong type stops at composition. The plugin shim
(`hydra_plugins.modlab_optuna_sweeper`) calls it with the classes Hydra is to instantiate: Hydra accepts
plugin classes only by names inside the `hydra_plugins` package, so the `_target_` comes from there.
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SweeperSettings:
    # Study name; null: <task_name>_<hparams_search preset>. Re-running with the same name and storage resumes.
    # It names the sweep dir and the default database file: letters, digits, '_', '-' and '.' only.
    study_name: Any = None
    # RDB URL; null: sqlite:///<paths.log_dir>/optuna/<study_name>.db. PostgreSQL to share across machines.
    storage: Any = None
    # maximize | minimize, or a list (one per optimized_metric) for multi-objective sweeps.
    direction: Any = "maximize"
    # COMPLETE + PRUNED trials the study should reach, counted over every run and worker.
    n_trials: int = 20
    # Trials launched together per batch (for a launcher that runs jobs in parallel).
    n_jobs: int = 1
    # tpe | random | cmaes | gp | qmc; args per sampler name, e.g. {tpe: {n_startup_trials: 5}}.
    sampler: str = "tpe"
    seed: Any = 42
    sampler_args: Any = field(default_factory=dict)
    # median | hyperband | successive_halving | none; args per pruner name, e.g. {median: {n_warmup_steps: 1}}.
    pruner: str = "median"
    pruner_args: Any = field(default_factory=dict)
    # The sweep stops once failed trials would exceed this share of all trials (failed + n_trials).
    max_failure_rate: float = 0.25
    # Seconds between heartbeats of running trials; a trial without one for grace_period (null: 6x, >= 60 s)
    # is failed and retried once. Trials of a dead process on the same host are found at once.
    heartbeat_interval: Any = 10
    grace_period: Any = None
    # Seconds a worker waits before checking again when other workers hold the remaining trials.
    poll_interval: float = 2.0
    # K: cross-validated trials. Each trial trains data.folds=K data.fold=0..K-1 (one launch per fold, a batch's
    # trials side by side) and the study optimizes the mean over folds; the std is stored next to it. The
    # pruner sees the running mean after each fold (step = fold), so trials are compared over the same folds.
    folds: Any = None
    # The search space: config key -> interval(...) / int(interval(...)) / tag(log, ...) / choice(...) / range(...).
    params: Any = None


@dataclass
class LauncherSettings:
    # How many jobs of a batch run at the same time (the sweeper's n_jobs sets the batch size).
    n_jobs: int = 1
    # Modules imported once in the sweeper before forking, so each job starts without re-importing them.
    preload: Any = field(default_factory=lambda: ["modlab.training.train"])


def _node(settings: type, plugin: type):
    """The settings as a typed config node plus the `_target_` Hydra instantiates `plugin` from."""
    from omegaconf import OmegaConf, open_dict

    node = OmegaConf.structured(settings)
    with open_dict(node):  # `_target_` is Hydra's key, not a setting: the plugin gets every other key
        node._target_ = f"{plugin.__module__}.{plugin.__qualname__}"
    return node


def register(sweeper: type, launcher: type) -> None:
    """Store `hydra/sweeper=modlab_optuna` and `hydra/launcher=modlab_process` with these plugin classes."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="modlab_optuna", node=_node(SweeperSettings, sweeper), provider="modlab")
    store.store(group="hydra/launcher", name="modlab_process", node=_node(LauncherSettings, launcher),
                provider="modlab")
