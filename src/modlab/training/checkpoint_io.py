"""A run's files on a disk that fills up or turns read-only: never half a checkpoint, one line instead of a traceback.

- `AtomicCheckpointIO` (Lightning CheckpointIO plugin, conf/trainer/default.yaml, so every trainer config
  has it): a checkpoint is serialized in memory, written to a temporary file next to its target, flushed
  and fsynced, renamed over the target, and the directory is fsynced. A full disk or a read-only directory
  leaves the previous complete checkpoint as it was and stops the run with one `ModlabError` line naming the
  file and the fix. Reading goes through `modlab.training.checkpoints.read` (weights_only=True).
- `WritableRunDir` (Hydra callback): Hydra creates the run dir, and writes into it, before any of our code
  runs; an unwritable one would end in Hydra's traceback. This checks it first and exits 2 with one line.
"""

from __future__ import annotations

import errno
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from hydra.experimental.callback import Callback as HydraCallback
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig

from modlab.errors import ModlabError
from modlab.io import atomic_path

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def disk_error(path: str | Path, err: OSError, what: str, *, action: str = "write", note: str = "",
               where: str = "paths.log_dir") -> ModlabError:
    """An OSError on `path` as one line: what failed, why, and how to fix it (`where`: the setting to move to)."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.errno in NO_SPACE:
        fix = f"free space on that disk, or write runs to one with room ({where}=<dir>)"
    elif err.errno in NOT_WRITABLE:
        fix = f"make it writable, or write runs to a writable directory ({where}=<dir>)"
    else:
        fix = f"check that path and its disk, or write runs elsewhere ({where}=<dir>)"
    return ModlabError(f"cannot {action} {what} {path}: {reason}{note}; {fix}")


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (a crash right after it must not bring the old name back)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # a platform or file system without directory handles (Windows): nothing to sync
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):  # some file systems cannot sync directories
            raise
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes | memoryview) -> None:
    """All of `data` at `path`, or `path` untouched: modlab.io's atomic write, with the file synced before the
    rename and the directory after it."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(path.parent)


def _is_local(path: _PATH) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local writes are all-or-nothing and whose disk errors are one line."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):  # remote (fsspec) storage: Lightning's own path
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(str(path).removeprefix("file://"))
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialized before the disk is touched: an error here writes nothing
        try:
            write_durably(path, buffer.getbuffer())
        except OSError as err:
            kept = f" (the previous complete {path.name} is kept)" if path.is_file() else ""
            raise disk_error(path, err, "checkpoint", note=kept) from None

    def load_checkpoint(self, path: _PATH, map_location: Any = None, weights_only: bool | None = None) -> dict:
        # Every checkpoint Lightning reads (resume, validate/test of the best one) through modlab's one
        # reader: weights_only=True whatever the caller asks, and one line for an empty or damaged file.
        if not _is_local(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        from modlab.training import checkpoints

        return checkpoints.read(str(path).removeprefix("file://"))

    def remove_checkpoint(self, path: _PATH) -> None:
        try:
            super().remove_checkpoint(path)
        except OSError as err:
            raise disk_error(path, err, "old checkpoint", action="remove") from None


class WritableRunDir(HydraCallback):
    """Before Hydra creates the run (or sweep) dir: a probe file where it will be, else exit 2, one line."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir")

    @staticmethod
    def _check(directory: str, key: str) -> None:
        path = Path(str(directory)).absolute()
        # Probe the nearest existing folder without creating anything: a sweep's name is checked (and
        # refused) after this, so nothing may appear where a bad name points.
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        try:
            if not existing.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(existing))
            with tempfile.TemporaryFile(dir=existing, prefix=".writable-"):
                pass
        except OSError as err:
            error = disk_error(path, err, "the run dir", where=f"paths.log_dir or {key}")
            # Hydra reports exceptions from here with a traceback and exit code 1; the CLI contract is one
            # `error:` line and exit 2 (modlab.cli.one_line_errors), so say it and leave.
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
