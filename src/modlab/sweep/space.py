"""The search space: Hydra sweep syntax (`interval`, `int(...)`, `tag(log, ...)`, `choice`, `range`) -> Optuna.

`params` in the sweeper config and sweep overrides on the command line use the syntax users know from
hydra-optuna-sweeper:

    optim.lr: tag(log, interval(1e-5, 1e-3))   -> FloatDistribution(1e-5, 1e-3, log=True)
    data.batch_size: int(interval(8, 64))      -> IntDistribution(8, 64)         (both ends included)
    head.dropout: range(0.0, 0.3, 0.1)         -> FloatDistribution(0.0, 0.2, step=0.1)  (stop excluded)
    backbone: choice(minilm, mpnet)            -> CategoricalDistribution        (config-group choice)
    loss.alpha: null,0.25,0.5                  -> CategoricalDistribution([None, 0.25, 0.5])

A value without a sweep function is a fixed override applied to every trial. A fixed override on the
command line wins over a searched parameter of the same key (`python train.py -m hparams_search=focal
optim.lr=1e-4` searches everything else with that lr).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modlab.errors import ModlabError

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./]*")
_KEYWORDS = {"true", "false", "null", "nan", "inf", "none", "yes", "no", "on", "off"}


def render(value: Any) -> str:
    """A Python value as Hydra override text that parses back to the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(float(f"{value:.12g}"))
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class Param:
    """One searched config key. `name` is the key (Optuna's parameter name); `prefix` is '', '+' or '++'."""

    name: str
    distribution: Any  # optuna.distributions.BaseDistribution
    prefix: str = ""
    raw: dict[str, str] = field(default_factory=dict)  # categorical value -> override text (lists, dicts)
    source: str = ""  # the text it was parsed from, for messages

    def override(self, value: Any) -> str:
        text = self.raw[value] if isinstance(value, str) and value in self.raw else render(value)
        return f"{self.prefix}{self.name}={text}"

    def describe(self) -> str:
        return f"{self.name}: {self.source}"


@dataclass
class SearchSpace:
    params: dict[str, Param]
    fixed: list[str]  # overrides applied to every trial, in order

    def overrides(self, values: Mapping[str, Any]) -> list[str]:
        return [p.override(values[name]) for name, p in self.params.items()]

    def fingerprint(self) -> dict[str, str]:
        """A JSON-able description, stored with the study so a resumed sweep can check it searches the same."""
        from optuna.distributions import distribution_to_json

        return {name: distribution_to_json(p.distribution) for name, p in sorted(self.params.items())}


def _parser(config_loader=None):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create(config_loader=config_loader)


def _parse_one(parser, text: str, where: str):
    from hydra.errors import HydraException

    try:
        return parser.parse_overrides([text])[0]
    except HydraException as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip() and not ln.startswith("See https")]
        reason = " ".join(lines[1:] or lines) or type(err).__name__
        raise ModlabError(f"{where}: cannot parse '{text}': {reason}") from None


def _prefix(override) -> str:
    if override.is_add():
        return "+"
    if override.is_force_add():
        return "++"
    return ""


def _key(override) -> str:
    return override.key_or_group if override.package is None else f"{override.key_or_group}@{override.package}"


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def distribution_from_override(override, where: str = "hparams_search", text: str | None = None
                               ) -> tuple[Any, dict[str, str]]:
    """Turn a parsed Hydra sweep override into an Optuna distribution (and raw override texts of choices)."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep, Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key = _key(override)
    sweep = override.value()
    tags = set(getattr(sweep, "tags", set()) or set())
    unknown = tags - {"log"}
    if unknown:
        raise ModlabError(f"{where}: {key}: unknown tag {sorted(unknown)[0]!r}; the only tag understood is 'log'")
    try:
        if isinstance(sweep, IntervalSweep):
            low, high = sweep.start, sweep.end
            if not (_number(low) and _number(high)):
                raise ValueError("interval() needs two numbers")
            if isinstance(low, int) and isinstance(high, int):
                return IntDistribution(low, high, log="log" in tags), {}
            return FloatDistribution(float(low), float(high), log="log" in tags), {}
        if "log" in tags:
            raise ValueError("tag(log, ...) applies to interval() only")
        if isinstance(sweep, RangeSweep) and not sweep.shuffle:
            start, stop, step = sweep.start, sweep.stop, sweep.step
            if not all(_number(x) for x in (start, stop, step)):
                raise ValueError("range() needs numbers")
            if step <= 0:
                raise ValueError(f"range() step must be positive, got {step}")
            count = math.ceil((stop - start) / step - 1e-9)
            if count < 1:
                raise ValueError(f"range({start}, {stop}, {step}) is empty")
            if all(isinstance(x, int) for x in (start, stop, step)):
                return IntDistribution(start, start + (count - 1) * step, step=step), {}
            last = float(f"{start + (count - 1) * step:.12g}")
            return FloatDistribution(float(start), last, step=float(step)), {}
        if isinstance(sweep, ChoiceSweep | RangeSweep):
            values = list(override.sweep_iterator(transformer=Transformer.identity))
            encoded = list(override.sweep_iterator(transformer=Transformer.encode))
            if not values:
                raise ValueError("choice() needs at least one value")
            choices, raw = [], {}
            for value, encoded_value in zip(values, encoded, strict=True):
                if isinstance(value, list | dict):
                    raw[str(encoded_value)] = str(encoded_value)
                    value = str(encoded_value)
                choices.append(value)
            if len(set(map(repr, choices))) != len(choices):
                raise ValueError("choice() has repeated values")
            return CategoricalDistribution(choices), raw
    except (ValueError, TypeError) as err:
        raise ModlabError(f"{where}: {text or key}: {err}") from None
    raise ModlabError(f"{where}: {key}: {type(sweep).__name__} is not a distribution the sweeper understands")


def flatten(params: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """`{optim: {lr: ...}}` (as `hydra.sweeper.params.optim.lr=...` on the command line makes it) -> `{optim.lr: ...}`."""
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def parse_search_space(
    params: Mapping[str, Any] | None, cli_overrides: Iterable[str] = (), config_loader=None
) -> SearchSpace:
    """Sweeper `params` plus command-line overrides -> searched params and fixed overrides.

    Searched: every sweep expression in `params` and every sweep override on the command line (the latter
    replaces a param of the same key). Fixed: plain values in `params`, then the command line's plain
    overrides, which also take that key out of the search space.
    """
    parser = _parser(config_loader)
    searched: dict[str, Param] = {}
    fixed: dict[str, str] = {}
    for where, items in (
        ("hydra.sweeper.params", list(flatten(params).items())),
        ("command line", [(None, o) for o in cli_overrides]),
    ):
        for key, value in items:
            if key is None:
                text = str(value)
            elif isinstance(value, str):
                text = f"{key}={value}"
            else:
                text = f"{key}={render(value)}"
            override = _parse_one(parser, text, where)
            name = _key(override)
            if override.is_delete():
                if key is not None:
                    raise ModlabError(f"{where}: {text}: a deletion is not a distribution")
                searched.pop(name, None)
                fixed[name] = text
                continue
            if override.is_sweep_override():
                dist, raw = distribution_from_override(override, where, text)
                source = text.split("=", 1)[1]
                searched[name] = Param(name=name, distribution=dist, prefix=_prefix(override), raw=raw,
                                       source=source)
                fixed.pop(name, None)
            else:
                searched.pop(name, None)
                fixed[name] = text if key is None else f"{_prefix(override)}{name}={override.get_value_element_as_str()}"
    return SearchSpace(params=searched, fixed=list(fixed.values()))


def first_values(space: SearchSpace) -> dict[str, Any]:
    """A representative value per param (low end / first choice), for composing a config before any trial."""
    from optuna.distributions import CategoricalDistribution

    out = {}
    for name, p in space.params.items():
        d = p.distribution
        out[name] = d.choices[0] if isinstance(d, CategoricalDistribution) else d.low
    return out
