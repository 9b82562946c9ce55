"""Serving speed: samples/s of torch fp32 eager, torch bf16 autocast, ONNX Runtime fp32 and int8, in one run.

Every path scores the same Jigsaw texts through `modlab.load` (the same tokenization, length-sorted batches
and truncation), at batch 1 and 32; ratios are against torch fp32 eager measured in the same run, so a busy
machine slows every path alike.

    python benchmarks/inference.py                       # real MiniLM (backbone=minilm), random head
    python benchmarks/inference.py --run outputs/train/runs/<time>   # a trained run instead
    python benchmarks/inference.py --tiny --texts 64     # quick smoke on a tiny random model

Bundles and the checkpoint go under a fresh temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "jigsaw2018-sample" / "train.csv"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def checkpoint(tmp: Path, tiny: bool) -> Path:
    """A bare modlab checkpoint of MiniLM (random head: speed does not depend on the weights' values)."""
    import torch
    from hydra import compose, initialize_config_dir

    from modlab.training import assemble

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["backbone=minilm", f"backbone.tiny={str(tiny).lower()}", "head=mean"])
    labels = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    module = assemble.build_module(cfg, assemble.Backbone.resolve(cfg.backbone), labels)
    path = tmp / "minilm.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": json.loads(json.dumps(dict(module.hparams)))},
               path)
    return path


def rate(clf, texts: list[str], batch: int, repeats: int) -> float:
    """Best-of-`repeats` samples/s (the minimum time is the least disturbed by other load)."""
    clf.batch_size = batch
    clf.predict_proba(texts[: max(batch, 2)])  # warm-up: allocations, ORT graph setup
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        clf.predict_proba(texts)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a trained run dir or .ckpt (default: real MiniLM, random head)")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model (smoke test)")
    parser.add_argument("--texts", type=int, default=256, help="Jigsaw texts scored per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import modlab
    from modlab.export.pipeline import export
    from modlab.predict.backends import cpu_has_native_bf16

    texts = pd.read_csv(SAMPLE, usecols=["comment_text"], nrows=args.texts)["comment_text"].astype(str).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(args.run) if args.run else checkpoint(Path(tmp), args.tiny)
        paths = {"torch fp32 eager": (source, "fp32"), "torch bf16 autocast": (source, "bf16")}
        for precision in ("fp32", "int8"):
            out, result = export(source, out=Path(tmp) / f"bundle-{precision}", precision=precision, force=True)
            print(result.line())
            paths[f"onnxruntime {precision}"] = (out, None)
        if not cpu_has_native_bf16():
            print("note: this CPU has no native bf16 (amx_bf16/avx512_bf16); bf16 autocast is emulated")
        rates: dict[tuple[str, int], float] = {}
        for name, (path, precision) in paths.items():
            clf = modlab.load(path, precision=precision, device="cpu", threads=args.threads)
            for batch in (1, 32):
                rates[name, batch] = rate(clf, texts, batch, args.repeats)
    print(f"{'path':<22} {'batch':>5} {'samples/s':>10} {'vs fp32 eager':>14}")
    for (name, batch), value in rates.items():
        print(f"{name:<22} {batch:>5} {value:>10.1f} {value / rates['torch fp32 eager', batch]:>13.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
