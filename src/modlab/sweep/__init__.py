"""Optuna sweeps for modlab: the Hydra sweeper and launcher, the sweep loop and everything it uses.

    settings          hydra.sweeper.* / hydra.launcher.* as structured configs, and their ConfigStore registration
    sweeper           the Hydra Sweeper (`hydra/sweeper=modlab_optuna`): reads the settings, hands over to runner
    process_launcher  the Hydra Launcher (`hydra/launcher=modlab_process`): each trial in its own process
    runner            the ask -> launch -> tell loop: checks before any trial, resume, failures, results
    space             search-space syntax -> Optuna distributions
    factory           samplers and pruners by name, arguments checked
    storage           the study's database URL and the names that become paths
    recovery          trials whose process died: heartbeats, dead-process detection, one retry
    pruning           the callback each trial's job runs: reports, prunes, records the trial's start
    results           optimization_results.yaml, the `best` link, each trial's trial.yaml, the summary table
    attrs             the names of what the sweep stores on Optuna trials

Hydra reaches it through the shim `hydra_plugins.modlab_optuna_sweeper`, which nothing here imports; see
docs/sweeps.md.
"""
