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

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from modlab.errors import ModlabError
from modlab.io import atomic_write_text
from modlab.reporting.console import print_wide
from modlab.reporting.figures import colors, figure, save_figure
from modlab.reporting.tables import format_value as fmt
from modlab.reporting.tables import markdown_table
from modlab.rundir import METRICS, RunDir
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
    return [int(p) if p.isdigit() else p for p in path.parts]


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
                      mode=mode, split=split, labels=labels, metrics=metrics)


def load_runs(paths: list[str | Path], split: str | None = None, sort_by: str | None = None) -> list[RunSummary]:
    runs = [load_run(p, split, sort_by) for p in find_runs(paths)]
    common = Path(os.path.commonpath([r.path for r in runs])) if len(runs) > 1 else runs[0].path.parent
    for r in runs:
        r.name = str(r.path.relative_to(common)) if r.path != common else r.path.name

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
    header = ["run", *CHOICE_GROUPS, metric_header or "optimized metric", *labels]
    body = []
    for r in runs:
        value = fmt(r.value) if metric_header != "optimized metric" or r.metric is None else \
            f"{r.metric}: {fmt(r.value)}"
        body.append([r.name, *(str(r.choices.get(g) or "-") for g in CHOICE_GROUPS), value,
                     *(f"{fmt(r.get('auroc', n))} / {fmt(r.get(f1, n))}" for n in labels)])
    return header, labels, body


def table(runs: list[RunSummary]) -> Table:
    header, labels, body = rows(runs)
    splits = sorted({r.split for r in runs})
    f1 = "F1 at the tuned thresholds" if _f1_metric(runs) == "f1_tuned" else "F1 at 0.5"
    t = Table(title=f"{len(runs)} runs, best first: per-label {'/'.join(splits)} ROC-AUC / {f1}")
    for i, h in enumerate(header):
        t.add_column(h, justify="right" if i > len(CHOICE_GROUPS) else "left")
    for row in body:
        t.add_row(*row)
    return t


def plot(runs: list[RunSummary], path: Path) -> Path:
    labels = list(dict.fromkeys(n for r in runs for n in r.labels))
    f1 = _f1_metric(runs)
    fig = figure(max(7.0, 1.1 * len(labels) + 3), 7)
    axes = fig.subplots(2, 1, sharex=True)
    x = list(range(len(labels)))
    for color, r in zip(colors(len(runs)), runs, strict=True):
        for ax, metric in zip(axes, ("auroc", f1), strict=True):
            name = f"{r.name}: " + "/".join(str(r.choices[g]) for g in ("backbone", "head", "loss") if r.choices.get(g))
            ax.plot(x, [r.get(metric, n) for n in labels], marker="o", linewidth=1.2, color=color,
                    label=name if len(runs) <= 20 else None)
    for ax, title in zip(axes, ("ROC-AUC", f1.replace("_", " ").replace("f1", "F1")), strict=True):
        ax.set_ylabel(title)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[1].set_xticks(x, labels, rotation=30, ha="right")
    axes[0].set_title(f"Per-label metrics across {len(runs)} runs")
    if len(runs) <= 20:
        axes[0].legend(fontsize=8, loc="lower left", ncols=2 if len(runs) > 6 else 1)
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
            sort_by: str | None = None, draw: bool = True, console: Console | None = None) -> Path:
    """Print the table; write compare.md (+ compare.png) into `out` (default: the runs' common directory)."""
    runs = load_runs(paths, split, sort_by)
    if out is None:
        out = os.path.commonpath([r.path for r in runs]) if len(runs) > 1 else runs[0].path
    out = Path(out)
    console = console or Console()
    print_wide(table(runs), console)
    figure = plot(runs, out / FIGURE).name if draw else None
    path = atomic_write_text(out / MARKDOWN, markdown(runs, figure))
    console.print(f"wrote {path}" + (f" and {out / FIGURE}" if figure else ""))
    return path
