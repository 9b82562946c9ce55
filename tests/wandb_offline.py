"""Test-only: W&B offline run files (`.wandb` transaction logs) read back, checksums verified."""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_HEADER = b":W&B"
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def wandb_records(path: str | Path) -> Iterator[Any]:
    """The protobuf records (wandb.proto Record) of a `.wandb` transaction log, checksums verified.

    wandb >= 0.2x has no Python reader for these files (wandb-core writes them); the framing is
    leveldb's log format: 32 KiB blocks of chunks with a 7-byte header (crc32, length, type).
    """
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != _HEADER:
        raise ValueError(f"{path} is not a W&B transaction log")
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if _BLOCK - pos % _BLOCK < 7:  # block trailer too small for a header: padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):  # the tail of a log still being written
            break
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            break
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise ValueError(f"{path}: checksum mismatch at byte {pos}")
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def read_offline_run(run_dir: str | Path, wait: float = 10.0) -> dict:
    """{'run': {id, project, group, tags, job_type}, 'config': {...}, 'summary': {...}, 'history': [{...}]}.

    wandb-core writes the log in its own process and may still be flushing it just after `finish()`
    returns: wait up to `wait` seconds for the run's exit record.
    """
    run_dir = Path(run_dir)
    files = [run_dir] if run_dir.suffix == ".wandb" else sorted(run_dir.glob("*.wandb"))
    if not files:
        raise FileNotFoundError(f"no .wandb file in {run_dir}")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(files[0])):
        time.sleep(0.1)

    def put(target: dict, item) -> None:
        """Set item's value at its key; a nested key (a table's fields, say) becomes nested dicts."""
        parts = list(item.nested_key) or [item.key]
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[parts[-1]] = json.loads(item.value_json)

    out: dict[str, Any] = {"run": {}, "config": {}, "summary": {}, "history": []}
    for record in wandb_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            out["run"] = {"id": r.run_id, "project": r.project, "group": r.run_group, "tags": list(r.tags),
                          "job_type": r.job_type, "name": r.display_name}
            for item in r.config.update:
                put(out["config"], item)
        elif kind == "config":
            for item in record.config.update:
                put(out["config"], item)
        elif kind == "summary":
            for item in record.summary.update:
                put(out["summary"], item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                put(row, item)
            out["history"].append(row)
    return out
