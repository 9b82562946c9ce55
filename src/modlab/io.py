"""Atomic writes: a crash or a concurrent reader never sees half a file."""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import tempfile
import time
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import, while single-threaded: os.umask can only be read by setting it.
UMASK = _read_umask()
STALE_S = 3600  # a temporary file untouched this long belongs to a writer that was killed (SIGKILL, power loss)


def _remove_stale_temps(path: Path) -> None:
    """A killed writer's temporary file outlives it; the next write of the same file removes it. A live writer's
    file is kept: its modification time moves while it writes."""
    cutoff = time.time() - STALE_S
    for old in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):  # another writer removed or renamed it first
            if old.stat().st_mtime < cutoff:
                old.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """A temporary path beside `path` to write to; renamed onto `path` when the block ends, removed if it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj) -> Path:
    """JSON with NaN written as null (standard JSON has no NaN)."""

    def clean(x):
        if isinstance(x, float) and math.isnan(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    return atomic_write_text(path, json.dumps(clean(obj), indent=2, sort_keys=True) + "\n")
