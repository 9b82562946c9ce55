"""Hydra plugins of modlab: the `modlab_optuna` sweeper and the `modlab_process` launcher.

    python train.py -m hparams_search=focal                       # sweeper picked by the preset
    python train.py -m hparams_search=focal hydra/launcher=modlab_process   # each trial in its own process
"""
