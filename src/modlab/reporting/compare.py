"""`modlab compare <run dirs or multirun dirs>`: runs side by side, from their files only (no W&B).

A run dir (read through `modlab.rundir.RunDir`) is any directory with a metrics.json (train.py or eval.py output); a directory without one is
searched for run dirs (a multirun, outputs/train/runs, ...). Prints a rich table (backbone, head, loss,
dataset, optimized metric, per-label ROC-AUC and F1), writes it as compare.md and draws compare.png.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from modlab.errors import ModlabError
from modlab.io import atomic_write_text
from modlab.reporting import statistics
from modlab.reporting.console import print_wide
from modlab.reporting.figures import figure, save_figure
from modlab.reporting.tables import format_value as fmt
from modlab.reporting.tables import markdown_table
from modlab.rundir import METRICS, PREDICTIONS, RunDir
from modlab.tracking.runinfo import CHOICE_GROUPS, merge_choices

MARKDOWN = "compare.md"
FIGURE = "compare.png"


@dataclass
class RunSummary:
    path: Path
    name: str = ""
    choices: dict = field(default_factory=dict)
    metric: str | None = None
    value: float = math.nan
    mode: str = "max"
    split: str = "test"
    labels: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)  # the run's config, flattened to dotted keys
    spread: dict = field(default_factory=dict)  # aggregated runs: the std of each metric over `count` runs
    count: int = 1

    def cell(self, key: str) -> str:
        """A metric's value, as `mean ± std` for runs aggregated over seeds or folds."""
        value = self.metrics.get(key)
        if key in self.spread and value is not None and not math.isnan(value):
            return f"{value:.3f}±{self.spread[key]:.3f}"
        return fmt(value)

    def get(self, metric: str, label: str) -> float:
        value = self.metrics.get(f"{self.split}/{metric}/{label}")
        return math.nan if value is None else float(value)


def find_runs(paths: list[str | Path]) -> list[Path]:
    runs: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise ModlabError(f"{raw} does not exist; pass run dirs or a multirun dir")
        if RunDir(path).is_run():
            runs.append(path)
        elif path.is_dir():
            runs += sorted((p.parent for p in path.rglob(METRICS)), key=_natural)
    runs = list(dict.fromkeys(p.resolve() for p in runs))
    if not runs:
        raise ModlabError(f"no runs found in {', '.join(map(str, paths))}: a run dir has a metrics.json "
                          f"(written by train.py or eval.py when a run finishes)")
    return runs


def _natural(path: Path):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts]  # 2 < 10; names after numbers


def _read_config(run: RunDir) -> dict:
    try:
        cfg = run.read_config()
    except ModlabError:  # an unreadable config only costs the run its descriptive columns
        return {}
    return {} if cfg is None else OmegaConf.to_container(cfg, resolve=False)


def load_run(path: Path, split: str | None = None, metric: str | None = None) -> RunSummary:
    """The run at `path`, ranked by `metric` (default: its optimized_metric)."""
    run = RunDir(path)
    metrics = run.read_metrics()
    cfg = _read_config(run)
    choices = merge_choices(run.hydra_choices(), cfg)
    if split is None:
        split = "test" if any(k.startswith("test/auroc/") for k in metrics) else "val"
    found = [k.split("/", 2)[2] for k in metrics if k.startswith(f"{split}/auroc/")]
    order = cfg.get("labels") or []
    labels = [n for n in order if n in found] + sorted(n for n in found if n not in order)
    if metric is None:
        metric = cfg.get("optimized_metric")
        metric = metric[0] if isinstance(metric, list) and metric else metric
    monitor = cfg.get("monitor") or {}
    mode = monitor.get("mode", "max") if monitor.get("metric") == metric else ("min" if "loss" in str(metric) else "max")
    value = metrics.get(metric) if metric else None
    return RunSummary(path=path, choices=choices, metric=metric, value=math.nan if value is None else float(value),
                      mode=mode, split=split, labels=labels, metrics=metrics, params=_flatten(cfg))


# Config keys that differ between runs without being a hyperparameter (where a run lives, what it logs to).
NOT_PARAMS = ("paths.", "hydra.", "callbacks.", "logger.", "optuna.", "ckpt_path", "labels", "tags", "task_name",
              "data.cache_dir", "data.splits_file", "model.")


def _flatten(cfg, prefix: str = "") -> dict:
    out = {}
    for key, value in (cfg or {}).items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        elif not isinstance(value, list) or all(not isinstance(v, dict | list) for v in value):
            out[f"{prefix}{key}"] = value
    return out


def swept(runs: list[RunSummary], limit: int = 8) -> list[str]:
    """Config keys whose values differ between the runs (a sweep's hyperparameters), at most `limit`."""
    if len(runs) < 2:
        return []
    keys = dict.fromkeys(k for r in runs for k in r.params if not k.startswith(NOT_PARAMS))
    # A key only some runs have (older runs, other readers) is compared among those that have it.
    return [k for k in keys if len({repr(r.params[k]) for r in runs if k in r.params}) > 1][:limit]


def _param(value) -> str:
    """A config value in a cell: floats short, a `_target_` by its class name."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if value is None:
        return "-"
    text = str(value)
    return text.rsplit(".", 1)[-1] if "." in text and "/" not in text and " " not in text else text


def judgement_columns(runs: list[RunSummary]) -> list[tuple[str, object]]:
    """(header, run -> value) for the bias and robustness sections the runs have."""
    out = []
    if any(f"{r.split}/bias/final" in r.metrics for r in runs):
        out.append(("bias final", lambda r: r.metrics.get(f"{r.split}/bias/final")))
    if any(any(k.startswith(f"{r.split}/robust/") for k in r.metrics) for r in runs):
        def worst(r, what: str, pick):
            values = [v for k, v in r.metrics.items() if k.startswith(f"{r.split}/robust/") and k.endswith(what)
                      and v is not None and not math.isnan(v)]
            return pick(values) if values else None

        out.append(("robust ROC-AUC (worst)", lambda r: worst(r, "/auroc_macro", min)))
        out.append(("evasion rate (worst)", lambda r: worst(r, "/evasion_rate", max)))
        out.append(("hard-neg FPR", lambda r: r.metrics.get(f"{r.split}/robust/hard_negatives/fpr")))
    return out


# What may differ between runs that are repeats of one config: their seed or their cross-validation fold.
REPEAT_KEYS = ("seed", "data.fold", "data.split_seed", "dataset.reader.seed")


def repeat_key(run: RunSummary) -> tuple:
    """What tells repeats of one config apart (their seeds and fold), as comparable values."""
    return tuple(repr(run.params.get(k)) for k in REPEAT_KEYS)


def config_groups(runs: list[RunSummary]) -> dict[str, list[RunSummary]]:
    """Runs by their config without REPEAT_KEYS (and without paths, loggers, names: NOT_PARAMS). Only keys every
    run has count: a key that runs from before a feature lack (refit) does not split their repeats, and runs of
    different groups (a focal loss's gamma) still differ in a key they share (loss._target_)."""
    groups: dict[str, list[RunSummary]] = {}
    shared = set.intersection(*(set(r.params) for r in runs)) if runs else set()
    for r in runs:
        key = repr(sorted((k, repr(v)) for k, v in r.params.items()
                          if k in shared and not k.startswith(NOT_PARAMS) and k not in REPEAT_KEYS))
        groups.setdefault(key, []).append(r)
    return groups


def aggregate(runs: list[RunSummary]) -> list[RunSummary]:
    """Runs that share a config except for REPEAT_KEYS become one summary: the mean of every metric, with
    its standard deviation (ddof=1) in `spread`; single runs stay as they are."""
    out = []
    for members in config_groups(runs).values():
        repeats = {repeat_key(m) for m in members}
        if len(members) == 1 or not members[0].params or len(repeats) < len(members):  # not seeds/folds apart
            out += members
            continue
        first, keys = members[0], set.intersection(*(set(m.metrics) for m in members))
        metrics, spread = {}, {}
        for key in keys:
            summary = statistics.summarize(m.metrics[key] for m in members)
            metrics[key] = summary.mean
            if summary.n > 1:
                spread[key] = summary.std
        value = metrics.get(first.metric, math.nan) if first.metric else math.nan
        params = {k: v for k, v in first.params.items() if k not in REPEAT_KEYS}
        out.append(RunSummary(path=first.path, name=first.name, choices=first.choices, metric=first.metric, value=value,
                              mode=first.mode, split=first.split, labels=first.labels, metrics=metrics,
                              params=params, spread=spread, count=len(members)))
    return out


def load_runs(paths: list[str | Path], split: str | None = None, sort_by: str | None = None,
              combine: bool = True) -> list[RunSummary]:
    """The runs under `paths`, best first; with `combine`, repeats over seeds/folds as one mean ± std row."""
    runs = [load_run(p, split, sort_by) for p in find_runs(paths)]
    # an unknown --sort would rank every run NaN (silently unsorted): name it and what the runs do have
    if sort_by is not None and runs and not any(sort_by in r.metrics for r in runs):
        have = sorted({k for r in runs for k in r.metrics if "/" in k and k.count("/") == 1})
        raise ModlabError(f"--sort {sort_by!r} is in no run's metrics.json; use one of: "
                          + ", ".join(have[:15]) + (", ..." if len(have) > 15 else ""))
    common = Path(os.path.commonpath([r.path for r in runs])) if len(runs) > 1 else runs[0].path.parent
    for r in runs:
        r.name = str(r.path.relative_to(common)) if r.path != common else r.path.name
    if combine:
        runs = aggregate(runs)
        for r in runs:
            r.name += f" (mean of {r.count})" if r.count > 1 else ""

    def key(r: RunSummary):
        missing = math.isnan(r.value)
        return (missing, 0.0 if missing else (r.value if r.mode == "min" else -r.value))

    return sorted(runs, key=key)


def _f1_metric(runs: list[RunSummary]) -> str:
    tuned = all(any(k.startswith(f"{r.split}/f1_tuned/") for k in r.metrics) for r in runs)
    return "f1_tuned" if tuned else "f1"


def rows(runs: list[RunSummary]) -> tuple[list[str], list[str], list[list[str]]]:
    """(header, labels, rows); per-label cells are 'ROC-AUC / F1'."""
    labels = list(dict.fromkeys(n for r in runs for n in r.labels))
    metrics = {r.metric for r in runs}
    metric_header = next(iter(metrics)) if len(metrics) == 1 and None not in metrics else "optimized metric"
    f1 = _f1_metric(runs)
    # Choices every run shares say nothing in a comparison; the swept keys say what differs.
    groups = [g for g in CHOICE_GROUPS if len(runs) == 1 or len({r.choices.get(g) for r in runs}) > 1]
    params, judged = swept(runs), judgement_columns(runs)
    header = ["run", *groups, *params, metric_header or "optimized metric", *(h for h, _ in judged), *labels]
    body = []
    for r in runs:
        value = r.cell(r.metric) if metric_header != "optimized metric" or r.metric is None else \
            f"{r.metric}: {r.cell(r.metric)}"
        body.append([r.name, *(str(r.choices.get(g) or "-") for g in groups), *(_param(r.params.get(k)) for k in params),
                     value, *(fmt(get(r)) for _, get in judged),
                     *(f"{r.cell(f'{r.split}/auroc/{n}')} / {r.cell(f'{r.split}/{f1}/{n}')}" for n in labels)])
    return header, labels, body


def table(runs: list[RunSummary]) -> Table:
    header, labels, body = rows(runs)
    splits = sorted({r.split for r in runs})
    f1 = "F1 at the tuned thresholds" if _f1_metric(runs) == "f1_tuned" else "F1 at 0.5"
    t = Table(title=f"{len(runs)} runs, best first: per-label {'/'.join(splits)} ROC-AUC / {f1}")
    first_label = len(header) - len(labels)
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 else "right", overflow="fold" if i < first_label else "ellipsis")
    for row in body:
        t.add_row(*row)
    return t


def plot(runs: list[RunSummary], path: Path) -> Path:
    """Heatmaps, runs x labels, of ROC-AUC and F1 (separate labels are not a trend: no lines between them)."""
    labels = list(dict.fromkeys(n for r in runs for n in r.labels))
    f1 = _f1_metric(runs)
    splits = "/".join(sorted({r.split for r in runs}))
    height = 1.2 + 0.35 * len(runs)
    fig = figure(max(7.0, 0.75 * len(labels) + 4), 2 * height + 1)
    axes = fig.subplots(2, 1)
    names = [r.name if len(r.name) <= 40 else "…" + r.name[-39:] for r in runs]
    for ax, metric, title in zip(axes, ("auroc", f1), ("ROC-AUC", "F1" + (" at the tuned thresholds"
                                                                         if f1 == "f1_tuned" else " at 0.5")),
                                 strict=True):
        values = np.array([[r.get(metric, n) for n in labels] for r in runs], dtype=float)
        image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, "-" if math.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if not math.isnan(v) and v > 0.6 else "white")
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(runs)), names, fontsize=7)
        ax.set_title(f"{title}, {splits} split, runs best first", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    return save_figure(fig, path)


def markdown(runs: list[RunSummary], figure: str | None) -> str:
    header, _, body = rows(runs)
    f1 = _f1_metric(runs)
    parts = ["# Run comparison", "",
             f"{len(runs)} runs, best first by their optimized metric. Per-label cells: ROC-AUC / "
             f"{'F1 at the tuned thresholds' if f1 == 'f1_tuned' else 'F1 at 0.5'} on each run's "
             f"{'/'.join(sorted({r.split for r in runs}))} split.", "",
             markdown_table(header, body), ""]
    if figure:
        parts += [f"![per-label metrics]({figure})", ""]
    parts += ["Runs:", ""] + [f"- `{r.name}`: {r.path}" for r in runs] + [""]
    return "\n".join(parts)


def compare(paths: list[str | Path], out: str | Path | None = None, split: str | None = None,
            sort_by: str | None = None, draw: bool = True, console: Console | None = None,
            combine: bool = True) -> Path:
    """Print the table; write compare.md (+ compare.png) into `out` (default: the runs' common directory)."""
    runs = load_runs(paths, split, sort_by, combine)
    if out is None:
        out = os.path.commonpath([r.path for r in runs]) if len(runs) > 1 else runs[0].path
    out = Path(out)
    console = console or Console()
    print_wide(table(runs), console)
    figure = plot(runs, out / FIGURE).name if draw else None
    path = atomic_write_text(out / MARKDOWN, markdown(runs, figure))
    console.print(f"wrote {path}" + (f" and {out / FIGURE}" if figure else ""))
    return path


# --- `modlab compare A B --paired`: is the difference real? -----------------------------------------------

def paired(paths: list[str | Path], split: str | None = None, sort_by: str | None = None,
           resamples: int = statistics.RESAMPLES, seed: int = 0, console: Console | None = None):
    """Print `A - B = d [lo, hi]` (95% interval) of the sort metric (default: A's optimized metric).

    Two paths are A and B; one path must hold exactly two configs. Repeats over folds/seeds on both sides:
    a paired t-interval over the folds/seeds they share (statistics.paired_t). One run on each side: a
    paired bootstrap of ROC-AUC over the rows both predictions.csv hold (statistics.paired_bootstrap).
    """
    (a, b), names = _sides([Path(p) for p in paths], split, sort_by)
    metric = sort_by or a[0].metric
    if metric is None:
        raise ModlabError("the runs name no optimized_metric; pass --sort <metric>, e.g. --sort val/auroc_macro")
    if len(a) == 1 and len(b) == 1:
        metric, result = _bootstrap(a[0], b[0], metric, resamples, seed)
        mode = "max"
    elif len(a) > 1 and len(b) > 1:
        result, mode = _paired_t(a, b, metric), a[0].mode
    else:
        raise ModlabError(f"A has {len(a)} run(s) and B {len(b)}: --paired compares one run with one run "
                          "(bootstrap over test rows) or repeats with repeats over the same folds/seeds")
    console = console or Console()
    pct = f"{result.confidence:.0%}"
    extra = (f", p={result.p_value:.3g}" if result.p_value is not None else "") + \
        (f", {result.undefined} undefined resamples left out" if result.undefined else "")
    console.print(f"{metric}: A - B = {result.estimate:+.4f} [{result.low:+.4f}, {result.high:+.4f}]  "
                  f"({pct} interval, {result.method}, n={result.n}{extra})", markup=False, highlight=False,
                  soft_wrap=True)
    for letter, side, name in zip("AB", (a, b), names, strict=True):
        mean = statistics.summarize(r.metrics.get(metric) for r in side)
        console.print(f"  {letter} = {name}: {fmt(mean.mean)}" + (f" (mean of {mean.n})" if mean.n > 1 else ""),
                      markup=False, highlight=False, soft_wrap=True)
    if result.excludes_zero:
        better = "A" if (result.estimate > 0) == (mode == "max") else "B"
        console.print(f"{better} is better: the {pct} interval excludes 0", markup=False)
    else:
        console.print(f"no difference shown: the {pct} interval contains 0", markup=False)
    return result


def _sides(paths: list[Path], split, sort_by) -> tuple[list[list[RunSummary]], list[str]]:
    """(A's runs, B's runs) and their names; each side is one config."""
    if len(paths) == 2:
        sides = [load_runs([p], split, sort_by, combine=False) for p in paths]
        for path, runs in zip(paths, sides, strict=True):
            if len(config_groups(runs)) > 1:
                raise ModlabError(f"{path} holds runs of {len(config_groups(runs))} configs; --paired compares one "
                                  "config with another: pass one config's runs (or one run) as A and as B")
        return sides, [str(p) for p in paths]
    if len(paths) == 1:
        groups = list(config_groups(load_runs(paths, split, sort_by, combine=False)).values())
        if len(groups) != 2:
            raise ModlabError(f"{paths[0]} holds runs of {len(groups)} configs; --paired needs two: pass A and B "
                              "as two paths")
        keys = swept([groups[0][0], groups[1][0]])
        names = [", ".join(f"{k}={_param(g[0].params.get(k))}" for k in keys) or g[0].name for g in groups]
        return groups, names
    raise ModlabError(f"--paired compares two sides, got {len(paths)} paths; pass A B (two run dirs, or two dirs "
                      "of runs over the same folds/seeds)")


def _paired_t(a: list[RunSummary], b: list[RunSummary], metric: str):
    by = []
    for letter, side in (("A", a), ("B", b)):
        keyed = {repeat_key(r): r for r in side}
        if len(keyed) < len(side):
            raise ModlabError(f"{letter} has runs with the same seed and fold ({', '.join(r.name for r in side)}); "
                              "pass each repeat once")
        by.append(keyed)
    shared = [k for k in by[0] if k in by[1]]
    if len(shared) < 2:
        raise ModlabError(f"A and B share {len(shared)} folds/seeds (same seed, data.fold, data.split_seed); a "
                          "paired interval needs 2 or more: run both over the same folds, e.g. 'data.fold=range(5)'")

    def value(r: RunSummary) -> float:
        if r.metrics.get(metric) is None:
            raise ModlabError(f"{r.path}: metrics.json has no {metric}; pass --sort with a metric both sides have")
        return float(r.metrics[metric])

    return statistics.paired_t([value(by[0][k]) for k in shared], [value(by[1][k]) for k in shared])


def _bootstrap(a: RunSummary, b: RunSummary, metric: str, resamples: int, seed: int):
    """ROC-AUC recomputed on the rows of both predictions.csv (the test split, or val without one)."""
    split = "test" if any(k.startswith("test/") for k in a.metrics) else "val"
    name = metric.split("/", 1)[1] if metric.split("/", 1)[0] in ("val", "test") else metric
    labels, probs_a, probs_b, targets = _paired_predictions(a, b)
    result = statistics.paired_bootstrap(statistics.auroc_statistic(name, labels), probs_a, probs_b, targets,
                                         resamples, seed)
    return f"{split}/{name}", result


def _paired_predictions(a: RunSummary, b: RunSummary):
    """(labels, A's probs, B's probs, targets) as [labels, rows] arrays over the ids both runs scored."""
    frames = []
    for r in (a, b):
        frame = RunDir(r.path).read_predictions()
        if frame is None:
            raise ModlabError(f"{RunDir(r.path).file(PREDICTIONS)} does not exist; the bootstrap needs both runs' "
                              "predictions.csv (train with report.predictions=true)")
        frames.append(frame)
    labels = [c[5:] for c in frames[0].columns if c.startswith("prob_") and c in frames[1].columns]
    if not labels:
        raise ModlabError(f"{a.path} and {b.path} predict no label in common; compare runs of one taxonomy")
    both = frames[0].merge(frames[1], on="id", suffixes=("_a", "_b"))
    if both.empty:
        raise ModlabError(f"{a.path} and {b.path} scored no row in common (by id); the bootstrap pairs rows: "
                          "score both on the same split (same dataset, data.split_seed, data.folds)")
    truth = [both[[f"label_{n}_{s}" for n in labels]].to_numpy(np.float64) for s in ("a", "b")]
    if not np.array_equal(truth[0], truth[1], equal_nan=True):
        raise ModlabError(f"{a.path} and {b.path} give the same ids different labels; compare runs on one dataset")
    probs = [both[[f"prob_{n}_{s}" for n in labels]].to_numpy(np.float64).T for s in ("a", "b")]
    return labels, probs[0], probs[1], statistics.targets_of(truth[0]).T
