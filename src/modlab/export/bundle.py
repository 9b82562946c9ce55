"""The bundle directory `modlab export` writes and `modlab.load` reads: all a model needs outside the harness.

    <bundle>/
      model.onnx      input_ids, attention_mask (int64, dynamic batch x sequence) -> probs (float32)
      modlab.json     labels, thresholds, max_length, backbone, source run and metrics, precision, parity,
                      modlab version, sha256 of model.onnx
      tokenizer files tokenizer.save_pretrained (tokenizer.json, tokenizer_config.json, ...); serving reads
                      tokenizer.json with the `tokenizers` library alone

Nothing in it is a pickle. Reading checks the metadata and the model's hash before anything is loaded, so a
tampered or truncated model.onnx, or labels and thresholds that disagree, are one line each. A bundle is
built in a temporary directory beside its target and renamed into place: readers never see half a bundle.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modlab.errors import ModlabError
from modlab.export.precision import EXPORT_PRECISIONS
from modlab.predict.spec import ModelSpec

METADATA = "modlab.json"
MODEL = "model.onnx"
FORMAT = "modlab-bundle"
FORMAT_VERSION = 1
FIX = "export it again with `modlab export <run dir>`"


def is_bundle(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / METADATA).is_file()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tokenizer_info(tokenizer) -> dict:
    """What the bundle's encoder needs beside tokenizer.json (modlab.predict.encoding.BundleEncoder)."""
    from modlab.predict.encoding import TOKENIZER_FILE

    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise ModlabError(f"the backbone's tokenizer ({type(tokenizer).__name__}) has no fast `tokenizers` version, "
                          f"so it cannot be bundled; use a backbone with a tokenizer.json")
    return {"file": TOKENIZER_FILE, "class": type(tokenizer).__name__, "pad_token_id": tokenizer.pad_token_id or 0,
            "truncation_side": getattr(tokenizer, "truncation_side", "right")}


def metadata(spec: ModelSpec, precision: str, graph: dict, tokenizer: dict, parity: dict, model_path: Path) -> dict:
    """modlab.json's content (model_path: the finished model.onnx, hashed here)."""
    from modlab import __version__

    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "modlab_version": __version__,
        "labels": list(spec.labels),
        "thresholds": {n: spec.thresholds[n] for n in spec.labels},
        "default_threshold": spec.default_threshold,
        "thresholds_source": spec.thresholds_source,
        "decision_rule": "flagged if p >= threshold",
        "max_length": spec.max_length, "max_length_source": spec.max_length_source,
        "backbone": spec.backbone, "head": spec.head,
        "source": {"checkpoint": spec.checkpoint, "run_dir": spec.run_dir, "metrics": spec.metrics},
        "precision": precision,
        "tokenizer": tokenizer,
        "model": {"file": MODEL, "sha256": sha256(model_path), "bytes": model_path.stat().st_size, **graph},
        "parity": parity,
    }


def write_metadata(directory: Path, meta: dict) -> Path:
    from modlab.io import write_json

    return write_json(directory / METADATA, meta)


@contextlib.contextmanager
def building(target: Path) -> Iterator[Path]:
    """A temporary directory beside `target`, renamed to `target` when the block succeeds and removed when it
    fails. An existing bundle at `target` is replaced; any other existing path is refused."""
    target = Path(target)
    if target.exists() and not is_bundle(target) and not (target.is_dir() and not any(target.iterdir())):
        raise ModlabError(f"--out {target} exists and is not a modlab bundle; choose another --out or remove it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    except OSError as err:
        raise ModlabError(f"cannot write the bundle at {target} ({err.strerror}); choose a writable --out") from None
    try:
        yield work
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(work, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- reading ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    path: Path
    meta: dict
    spec: ModelSpec
    precision: str
    model: bytes  # model.onnx, hash-checked

    def encoder(self):
        from modlab.predict.encoding import BundleEncoder

        tok = self.meta.get("tokenizer") or {}
        return BundleEncoder(self.path, self.spec.max_length, tok.get("pad_token_id", 0),
                             tok.get("truncation_side", "right"))


def _fail(where: Path, problem: str) -> ModlabError:
    return ModlabError(f"{where}: {problem}; {FIX}")


def _number_in_unit(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value) \
        and 0.0 <= value <= 1.0


def check_metadata(meta, where: Path) -> ModelSpec:
    """The spec the metadata describes, or one line naming the field that is wrong."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(where, f"not a modlab bundle's metadata (no \"format\": \"{FORMAT}\")")
    if meta.get("format_version") != FORMAT_VERSION:
        raise _fail(where, f"format_version {meta.get('format_version')!r} is not {FORMAT_VERSION} (another modlab "
                           f"version wrote it)")
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(n, str) for n in labels) \
            or len(set(labels)) != len(labels):
        raise _fail(where, f"\"labels\" must be a list of distinct names (got {str(labels)[:80]})")
    found = meta.get("thresholds")
    if not isinstance(found, dict) or sorted(found) != sorted(labels):
        names = sorted(found) if isinstance(found, dict) else found
        raise _fail(where, f"\"thresholds\" are for {names} but \"labels\" are {labels}: they must name the same labels")
    bad = [n for n in labels if not _number_in_unit(found[n])]
    if bad:
        raise _fail(where, f"threshold of {bad[0]!r} is {found[bad[0]]!r}, not a number in [0, 1]")
    if meta.get("precision") not in EXPORT_PRECISIONS:
        raise _fail(where, f"\"precision\" {meta.get('precision')!r} is not one of {', '.join(EXPORT_PRECISIONS)}")
    length = meta.get("max_length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 2:
        raise _fail(where, f"\"max_length\" {length!r} is not a token count")
    model = meta.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("sha256"), str):
        raise _fail(where, "\"model\" has no sha256 of model.onnx")
    default = meta.get("default_threshold", 0.5)
    source = meta.get("source") or {}
    return ModelSpec(labels=tuple(labels), thresholds={n: float(found[n]) for n in labels},
                     default_threshold=float(default) if _number_in_unit(default) else 0.5,
                     thresholds_source=str(meta.get("thresholds_source", "")), max_length=length,
                     max_length_source=str(meta.get("max_length_source", "")),
                     backbone=dict(meta.get("backbone") or {}), head=str(meta.get("head", "")),
                     checkpoint=source.get("checkpoint"), run_dir=source.get("run_dir"),
                     metrics=dict(source.get("metrics") or {}))


def read(path: str | Path) -> Bundle:
    """A bundle checked: metadata fields, and model.onnx's size and sha256 against the metadata."""
    path = Path(path)
    where = path / METADATA
    try:
        meta = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModlabError(f"{path} is not a bundle (no {METADATA}); {FIX}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise _fail(where, f"not valid JSON ({' '.join(str(err).split())[:120]})") from None
    spec = check_metadata(meta, where)
    model_path = path / MODEL
    try:
        model = model_path.read_bytes()
    except FileNotFoundError:
        raise _fail(model_path, "does not exist") from None
    expected = meta["model"]
    digest = hashlib.sha256(model).hexdigest()
    if digest != expected["sha256"]:
        size = f"{len(model)} bytes, metadata says {expected.get('bytes')}"
        raise _fail(model_path, f"sha256 {digest[:12]}... does not match {METADATA} ({expected['sha256'][:12]}...; "
                                f"{size}): the file was changed or truncated after export")
    return Bundle(path=path, meta=meta, spec=spec, precision=meta["precision"], model=model)
