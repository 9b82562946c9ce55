"""Optuna sweeps for modlab: search-space syntax, the sweep loop, pruning callback, recovery, results.

The Hydra plugin that drives it lives in `hydra_plugins.modlab_optuna_sweeper`; see docs/sweeps.md.
"""
