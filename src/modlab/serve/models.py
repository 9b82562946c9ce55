"""The models a server holds: `name=PATH` arguments loaded through `modlab.load`, all of them or none.

Names default to the directory name (a .ckpt: its file stem) and are checked here, so they are safe in URLs,
metric labels and the page. Every model gets an equal share of the CPU threads unless `threads` is given:
N models each running their own batch at once must not oversubscribe the cores.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from modlab.errors import ModlabError, one_line

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ModelArg:
    name: str
    path: Path


def parse(args: list[str]) -> list[ModelArg]:
    """`PATH` or `name=PATH` per argument; one line for a bad or repeated name."""
    if not args:
        raise ModlabError("give at least one model: modlab serve PATH [name=PATH ...] (a bundle or a run dir)")
    found: list[ModelArg] = []
    for arg in args:
        name, sep, rest = arg.partition("=")
        if sep and NAME.match(name) and rest:
            path = Path(rest).expanduser()
        else:
            path = Path(arg).expanduser()
            name = path.stem if path.suffix == ".ckpt" else path.resolve().name
            if not NAME.match(name):
                raise ModlabError(f"{arg}: cannot use {name!r} as a model name (letters, digits, . _ -, up to 64); "
                                  f"name it: modlab serve mymodel={arg}")
        if any(m.name == name for m in found):
            raise ModlabError(f"two models are named {name!r}; name them apart: modlab serve a=PATH b=PATH")
        found.append(ModelArg(name, path))
    return found


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_model(models: int, threads: int | None) -> int:
    return int(threads) if threads else max(1, cpu_count() // max(1, models))


def load_all(args: list[ModelArg], threads: int | None = None, batch_size: int = 32) -> dict:
    """{name: Classifier} in argument order; the first model that fails stops start-up with one line."""
    import modlab

    each = threads_per_model(len(args), threads)
    loaded = {}
    for arg in args:
        if not arg.path.exists():
            raise ModlabError(f"model {arg.name!r}: {arg.path} does not exist; pass a bundle from `modlab export` "
                              f"or a training run dir; the server was not started")
        try:
            loaded[arg.name] = modlab.load(arg.path, threads=each, batch_size=batch_size)
        except Exception as err:  # noqa: BLE001 - any failure to load means: do not start half-loaded
            raise ModlabError(f"model {arg.name!r} from {arg.path} failed to load ({one_line(err)}); "
                              f"the server was not started") from None
    return loaded


def describe(name: str, clf) -> dict:
    """The /v1/models entry of a loaded Classifier."""
    spec = clf.spec
    return {"id": name, "object": "model", "labels": list(clf.labels), "thresholds": dict(clf.thresholds),
            "precision": clf.precision, "backend": clf.backend, "device": clf.device,
            "max_length": clf.max_length, "backbone": spec.backbone.get("name"), "head": spec.head,
            "source": clf.source, "run_dir": spec.run_dir,
            "metrics": {k: None if v is None or math.isnan(v) else float(v) for k, v in spec.metrics.items()}}
