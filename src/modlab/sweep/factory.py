"""Samplers and pruners by name, with their arguments checked before any trial starts."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from modlab.errors import ModlabError

SAMPLERS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "gp": "GPSampler",
    "qmc": "QMCSampler",
}
PRUNERS = {
    "median": "MedianPruner",
    "hyperband": "HyperbandPruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "none": "NopPruner",
}
# What a pruner gets unless the config says otherwise. Steps are epochs (0-based), so n_warmup_steps=1 lets
# every trial finish its first two epochs before it can be compared with the median.
PRUNER_DEFAULTS: dict[str, dict[str, Any]] = {
    "median": {"n_startup_trials": 4, "n_warmup_steps": 1},
    "hyperband": {"min_resource": 1, "reduction_factor": 3},
    "successive_halving": {"min_resource": 1, "reduction_factor": 3},
    "none": {},
}
SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {
    "tpe": {"n_startup_trials": 8},
    "gp": {"n_startup_trials": 8},
}


def _plain(args: Any) -> dict[str, Any]:
    from omegaconf import DictConfig, OmegaConf

    if args is None:
        return {}
    if isinstance(args, DictConfig):
        args = OmegaConf.to_container(args, resolve=True)
    if not isinstance(args, Mapping):
        raise ModlabError(f"expected a mapping of arguments, got {args!r}")
    return dict(args)


def select_args(all_args: Any, name: str, names: Mapping[str, str]) -> dict[str, Any]:
    """`{tpe: {...}, random: {...}}` -> the chosen one's; flat keys (`++hydra.sweeper.pruner_args.n_warmup_steps=0`)
    apply to whatever is chosen and win over the per-name ones."""
    args = _plain(all_args)
    return {**_plain(args.get(name)), **{k: v for k, v in args.items() if k not in names}}


def _check_kwargs(cls, kwargs: Mapping[str, Any], what: str) -> None:
    accepted = inspect.signature(cls.__init__).parameters
    for key in kwargs:
        if key not in accepted or key == "self":
            options = ", ".join(p for p in accepted if p not in ("self", "args", "kwargs"))
            raise ModlabError(f"{what} has no argument {key!r}; it takes: {options}")


def sampler_class(name: str):
    import optuna

    if name not in SAMPLERS:
        raise ModlabError(f"hydra.sweeper.sampler={name!r} is unknown; choose one of {', '.join(SAMPLERS)}")
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ModlabError("hydra.sweeper.sampler=cmaes needs the 'cmaes' package; pip install cmaes") from None
    return getattr(optuna.samplers, SAMPLERS[name])


def build_sampler(name: str, seed: int | None, args: Mapping[str, Any], n_objectives: int = 1):
    """A sampler; `seed` is per trial for the stateless samplers (so parallel workers draw different points)."""
    import warnings

    import optuna

    cls = sampler_class(name)
    kwargs = {**SAMPLER_DEFAULTS.get(name, {}), **dict(args)}
    _check_kwargs(cls, kwargs, f"sampler {name}")
    if name == "cmaes" and n_objectives > 1:
        raise ModlabError("sampler=cmaes handles one objective only; use tpe, random, gp or qmc for several")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return cls(seed=seed, **kwargs)
        except (TypeError, ValueError) as err:
            raise ModlabError(f"sampler {name}: {err}") from None


def pruner_spec(name: str, args: Mapping[str, Any], max_epochs: int | None) -> dict[str, Any]:
    """`{"name": ..., **kwargs}`: what the sweeper passes to every trial's pruning callback."""
    if name not in PRUNERS:
        raise ModlabError(f"hydra.sweeper.pruner={name!r} is unknown; choose one of {', '.join(PRUNERS)}")
    kwargs = {**PRUNER_DEFAULTS[name], **dict(args)}
    if name == "hyperband" and "max_resource" not in kwargs and max_epochs:
        kwargs["max_resource"] = int(max_epochs)
    spec = {"name": name, **kwargs}
    build_pruner(spec)  # check the arguments now
    return spec


def build_pruner(spec: Mapping[str, Any] | None):
    import optuna

    spec = _plain(spec) if spec is not None else {"name": "none"}
    name = spec.pop("name", "none")
    if name not in PRUNERS:
        raise ModlabError(f"pruner {name!r} is unknown; choose one of {', '.join(PRUNERS)}")
    cls = getattr(optuna.pruners, PRUNERS[name])
    _check_kwargs(cls, spec, f"pruner {name}")
    try:
        return cls(**spec)
    except (TypeError, ValueError) as err:
        raise ModlabError(f"pruner {name}: {err}") from None
