"""Hydra's entry point to modlab's sweeper and launcher, which live in `modlab.sweep` (see docs/sweeps.md).

    python train.py -m hparams_search=focal                       # sweeper picked by the preset
    python train.py -m hparams_search=focal hydra/launcher=modlab_process   # each trial in its own process

Hydra finds plugins by importing the modules of the `hydra_plugins` namespace and instantiates a plugin only
by a class name inside it, so the two classes are named here; they add nothing to modlab's.
"""

from modlab.sweep import process_launcher, settings, sweeper


class ModlabOptunaSweeper(sweeper.OptunaSweeper):
    """`hydra/sweeper=modlab_optuna`: `modlab.sweep.sweeper.OptunaSweeper`."""


class ModlabProcessLauncher(process_launcher.ProcessLauncher):
    """`hydra/launcher=modlab_process`: `modlab.sweep.process_launcher.ProcessLauncher`."""


settings.register(sweeper=ModlabOptunaSweeper, launcher=ModlabProcessLauncher)
