"""`modlab sync [DIR ...]`: upload every offline W&B run under the outputs (`wandb sync` finds none there).

Offline runs live in `<run dir>/wandb/offline-run-*`, one per run or sweep trial; `wandb sync` takes such
directories but does not search a tree for them. This finds them and hands them to `wandb sync` in one call.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modlab.errors import ModlabError


def offline_runs(roots: list[str | Path]) -> list[Path]:
    missing = [str(r) for r in roots if not Path(r).expanduser().exists()]
    if missing:
        raise ModlabError(f"{missing[0]} does not exist; pass the outputs dir (default: outputs) or run dirs")
    found = [run for root in roots for run in sorted(Path(root).expanduser().rglob("offline-run-*"))
             if run.is_dir() and run.parent.name == "wandb"]
    return list(dict.fromkeys(found))


def sync(roots: list[str | Path], dry_run: bool = False, extra: list[str] | None = None) -> int:
    runs = offline_runs(roots)
    if not runs:
        print(f"no offline W&B runs under {', '.join(map(str, roots))} (they are <run dir>/wandb/offline-run-*)")
        return 0
    command = [sys.executable, "-m", "wandb", "sync", *(extra or []), *map(str, runs)]
    print(f"{len(runs)} offline run(s):", *map(str, runs), sep="\n  ")
    if dry_run:
        return 0
    return subprocess.run(command).returncode
