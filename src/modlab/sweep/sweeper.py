"""The `modlab_optuna` Hydra sweeper: Optuna studies with pruning, resume, heartbeats and parallel workers.

Kept import-light (Hydra imports the plugin shim, and so this module, at every start-up, sweep or not); the
work is in `modlab.sweep.runner`. Hydra knows it as `hydra_plugins.modlab_optuna_sweeper.ModlabOptunaSweeper`.
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from modlab.sweep.settings import SweeperSettings


class OptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        super().__init__()
        self.settings = SweeperSettings(**settings)
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        # `${hydra:...}` interpolations (paths.log_dir, the sweep dir) resolve against the current HydraConfig,
        # which Hydra sets per job only; give the sweeper's own reads the master config.
        HydraConfig.instance().set_config(config)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from modlab.errors import ModlabError
        from modlab.sweep.runner import SweepRunner

        runner = SweepRunner(self.settings, self.config, self.hydra_context, self.launcher)
        try:
            plan = runner.prepare(list(arguments))
        except ModlabError as err:  # bad input: one line, before any trial starts
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        return runner.run(plan)
