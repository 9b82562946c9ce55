"""A read table cached on disk (Arrow IPC), so a re-run over the same files skips parsing them again.

Only modlab's own readers of files are cached (a user's reader may read anything, a synthetic table is
generated): the key hashes the reader and its arguments, the bytes of every file it can read (the `path`
file, or the files directly in the `path` folder) and the source of the `modlab.data` package, so an edited
row, a changed option or a new version of a reader makes a new entry. Entries are written atomically, an
unreadable one is read again from the source and overwritten, and any of them is safe to delete. Parsing a
million CSV rows takes ~15 s here; loading them back ~2 s.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from modlab.data.table import LabeledTable
from modlab.errors import one_line
from modlab.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = "table-v1"
CHUNK = 1 << 22


def _source_files(path) -> list[Path] | None:
    if not isinstance(path, str | os.PathLike):
        return None
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return None


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """The data package's source: a fixed reader must not be served a table its old code parsed."""
    h = hashlib.sha256()
    for file in sorted(Path(__file__).parent.glob("*.py")):
        h.update(file.name.encode() + b"\0" + file.read_bytes())
    return h.hexdigest()


def cache_key(reader) -> str | None:
    """The entry's name for `reader` (a functools.partial of a modlab reader), or None: not cacheable."""
    func = getattr(reader, "func", None)
    kwargs = getattr(reader, "keywords", None)
    if func is None or kwargs is None or not getattr(func, "__module__", "").startswith("modlab.data."):
        return None
    files = _source_files(kwargs.get("path"))
    if not files:
        return None
    h = hashlib.sha256(f"{FORMAT}|{_code_digest()}|{func.__module__}.{func.__qualname__}|".encode())
    h.update(json.dumps(_plain(kwargs), sort_keys=True, default=str).encode())
    for file in files:
        h.update(f"|{file.name}|{file.stat().st_size}|".encode())
        with open(file, "rb") as f:
            while block := f.read(CHUNK):
                h.update(block)
    return h.hexdigest()[:32]


def _plain(value):
    """Reader arguments as JSON-able values (Hydra hands over DictConfig/ListConfig inside a partial)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _to_arrow(table: LabeledTable):
    import pyarrow as pa

    columns = {"id": pa.array(table.ids, pa.string()), "text": pa.array(table.texts, pa.large_string())}
    for j in range(len(table.label_names)):
        columns[f"label_{j}"] = pa.array(table.labels[:, j], pa.float32())
    if table.split is not None:
        columns["split"] = pa.array(np.asarray(table.split).astype(str), pa.string())
    meta_columns = []
    if table.meta is not None:
        for name in table.meta.columns:
            columns[f"meta_{len(meta_columns)}"] = pa.array(table.meta[name].to_numpy())
            meta_columns.append(str(name))
    info = {"label_names": list(table.label_names), "source": table.source, "meta_columns": meta_columns,
            "split": table.split is not None}
    return pa.table(columns).replace_schema_metadata({"modlab": json.dumps(info)})


def _from_arrow(arrow) -> LabeledTable:
    """A table that owns its memory: every value is copied out of `arrow` (which may be a view of a mapped file)."""
    import pandas as pd

    info = json.loads(arrow.schema.metadata[b"modlab"])
    names = info["label_names"]
    labels = np.stack([arrow.column(f"label_{j}").to_numpy() for j in range(len(names))], axis=1) if names \
        else np.zeros((arrow.num_rows, 0), dtype=np.float32)
    meta = None
    if info["meta_columns"]:
        meta = pd.DataFrame({name: arrow.column(f"meta_{i}").to_numpy(zero_copy_only=False)
                             for i, name in enumerate(info["meta_columns"])}, copy=True)
    split = np.asarray(arrow.column("split").to_pylist()) if info["split"] else None
    return LabeledTable(ids=arrow.column("id").to_pylist(), texts=arrow.column("text").to_pylist(), labels=labels,
                        label_names=list(names), split=split, meta=meta, source=info["source"])


def read(reader, cache_dir: str | Path | None) -> LabeledTable:
    """`reader()`, or the table it returned before for the same files and arguments."""
    key = cache_key(reader) if cache_dir else None
    if key is None:
        return reader()
    path = Path(cache_dir) / f"table-{key}.arrow"
    if path.is_file():
        try:
            import pyarrow as pa

            # Mapped, not read: reading 600 MB into fresh buffers cost 0.1-5 s on a VM, mapping the page cache
            # nothing (EXPERIMENTS.md, "Data set-up at scale"). _from_arrow copies every value, so no view outlives it.
            with pa.memory_map(str(path)) as source:
                table = _from_arrow(pa.ipc.open_file(source).read_all())
            log.info("table cache hit: %s", path)
            return table
        except Exception as err:  # a truncated or foreign file: read the source again and overwrite it
            log.warning("table cache %s is unreadable (%s); reading the source again", path, err)
    table = reader()
    try:
        _write(path, _to_arrow(table))
    except Exception as err:  # noqa: BLE001 - a cache never stops a run (a full disk, a meta column Arrow refuses)
        log.warning("table cache %s not written (%s); the run goes on without it", path, one_line(err, 200))
        return table
    log.info("table cache written: %s (%d rows)", path, len(table))
    return table


def _write(path: Path, arrow) -> None:
    """Streamed to a temporary file beside `path`, then renamed (bytes in memory would hold the table twice)."""
    import pyarrow as pa

    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, arrow.schema) as writer:
        writer.write_table(arrow)
