"""Data set-up at scale: read + validate + split + tokenize for 10k, 100k and 1M rows, cold and cached.

    HF_HUB_OFFLINE=1 python benchmarks/data_scale.py [--sizes 10000 100000 1000000] [--work outputs/bench/data-scale]

Three sources per size, written once under `--work` (kept for re-runs): synthetic rows as JSONL (`modlab data
synth`'s generator and writer, read back with dataset=jsonl), a civil_comments-shaped CSV (the Kaggle 2019
columns, rows drawn from ../shared/data/civil_comments-identities/train.csv with fresh ids), and the same CSV with
three random words at the end of every text (`civil-csv-unseen`: words new to the tokenizer's word cache in every
row). Each measurement runs in its own process: the stages `ModerationDataModule.setup()` runs (the dataset's reader through the
table cache, validate_table, assign_splits, tokenize with the real MiniLM tokenizer at max_length 128), first
with an empty cache (cold: parse, write the table and token caches), then again with the caches it wrote
(cached). Printed: seconds per stage and in all, the process's peak
RSS (and its RSS after imports, before any data), and the growth exponent of the cold time from the smallest
to the largest size (1.0 = linear). Targets: exponent <= 1.1, 1M rows cold <= 90 s and <= 4 GB, cached <= 10 s.
`--repeats N` measures each (size, cold|cached) N times and judges the median: on a shared VM the first touch of
fresh memory alone took 0.07-5 s per 600 MB from one process to the next (EXPERIMENTS.md).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
CIVIL_POOL = ROOT.parent / "shared" / "data" / "civil_comments-identities" / "train.csv"


def rss_gb() -> float:
    """Peak RSS of this process image: VmHWM (ru_maxrss would include the parent's RSS at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # not Linux: KiB on Linux


def write_synthetic(path: Path, size: int) -> None:
    from modlab.data import jsonl, synthetic

    jsonl.write(synthetic.generate(size=size, seed=0), path)


def write_civil(path: Path, size: int, unseen: int = 0) -> None:
    """Rows drawn from the civil sample. `unseen` random 8-letter words end every text: with 3, a million texts hold
    ~3 million distinct words, more than the real 1.8M-comment corpus, and tokens.WordCache meets new words in every
    text (without them, the texts repeat the sample's 4,960 and their words)."""
    import numpy as np
    import pandas as pd

    pool = pd.read_csv(CIVIL_POOL, dtype={"id": str}, keep_default_na=False)
    rng = np.random.default_rng(0)
    rows = pool.iloc[rng.integers(0, len(pool), size)].reset_index(drop=True)
    rows["id"] = [f"c{i}" for i in range(size)]
    if unseen:
        letters = rng.integers(ord("a"), ord("z") + 1, (size, unseen, 9), dtype=np.uint8)
        letters[:, :, 0] = ord(" ")
        words = letters.reshape(size, -1).view(f"S{unseen * 9}")[:, 0].astype(str)
        rows["comment_text"] = rows["comment_text"] + pd.Series(words)
    tmp = path.with_suffix(".tmp")
    rows.to_csv(tmp, index=False)
    tmp.rename(path)


SOURCES = {"synthetic-jsonl": ("jsonl", "synthetic.jsonl", write_synthetic),
           "civil-csv": ("civil_comments", "train.csv", write_civil),
           "civil-csv-unseen": ("civil_comments", "train.csv", functools.partial(write_civil, unseen=3))}


def measure(dataset: str, path: str, cache: str) -> dict:
    """One set-up, in this process (run as a child by main)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from modlab.data import table_cache
    from modlab.data.splits import assign_splits
    from modlab.data.table import validate_table
    from modlab.data.tokens import tokenize
    from modlab.training.assemble import Backbone

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", [f"dataset={dataset}", f"dataset.path={path}", "backbone=minilm"])
    tokenizer = Backbone.resolve(cfg.backbone).tokenizer
    before = rss_gb()
    times = {}
    started = last = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        times[name] = now - last
        last = now

    table = table_cache.read(instantiate(cfg.dataset.reader, _partial_=True), cache)
    validate_table(table)
    stage("read")
    assign_splits(table, cfg.data.val_size, cfg.data.test_size, cfg.data.split_seed)
    stage("split")
    tokenize(table.texts, tokenizer, cfg.data.max_length, cache)
    stage("tokenize")
    return {"rows": len(table), "seconds": time.perf_counter() - started, **times, "rss_gb": rss_gb(),
            "base_rss_gb": before}


def child(dataset: str, path: Path, cache: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--measure", dataset, str(path), str(cache)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"measuring {path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench" / "data-scale")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--repeats", type=int, default=1, help="runs per size and cache state; the median is judged")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return

    import shutil

    print(f"# data scale: {platform.processor() or platform.machine()}, {os.cpu_count()} vCPUs; MiniLM tokenizer, "
          f"max_length 128")
    print(f"{'source':<16} {'rows':>9} {'run':<7} {'read s':>7} {'split s':>8} {'tok s':>7} {'total s':>8} "
          f"{'peak GB':>8} {'base GB':>8}")
    results: dict[str, dict[int, dict]] = {}
    for source in args.sources:
        dataset, name, write = SOURCES[source]
        for size in args.sizes:
            folder = args.work / f"{source}-{size}"
            folder.mkdir(parents=True, exist_ok=True)
            data = folder / name
            if not data.is_file():
                write(data, size)
            cache = folder / "token-cache"
            runs: dict[str, list[dict]] = {"cold": [], "cached": []}
            for _ in range(args.repeats):
                shutil.rmtree(cache, ignore_errors=True)
                for run in ("cold", "cached"):
                    r = child(dataset, data if dataset == "jsonl" else folder, cache)
                    runs[run].append(r)
                    print(f"{source:<16} {r['rows']:>9,} {run:<7} {r['read']:>7.2f} {r['split']:>8.2f} "
                          f"{r['tokenize']:>7.2f} {r['seconds']:>8.2f} {r['rss_gb']:>8.2f} {r['base_rss_gb']:>8.2f}",
                          flush=True)
            for run, measured in runs.items():  # the median run by total seconds, its peak the largest seen
                median = sorted(measured, key=lambda r: r["seconds"])[len(measured) // 2]
                results.setdefault(f"{source}/{run}", {})[size] = {**median,
                                                                   "rss_gb": max(r["rss_gb"] for r in measured)}
    lo, hi = min(args.sizes), max(args.sizes)
    print()
    for source in args.sources:
        cold, cached = results[f"{source}/cold"], results[f"{source}/cached"]
        if lo != hi:
            exponent = math.log(cold[hi]["seconds"] / cold[lo]["seconds"]) / math.log(cold[hi]["rows"] / cold[lo]["rows"])
            print(f"{source}: cold growth exponent {lo:,} -> {hi:,} rows: {exponent:.2f} (target <= 1.1)")
        if hi >= 1_000_000:
            ok = cold[hi]["seconds"] <= 90 and cold[hi]["rss_gb"] <= 4 and cached[hi]["seconds"] <= 10
            print(f"{source}: {cold[hi]['rows']:,} rows{' (medians)' if args.repeats > 1 else ''} cold "
                  f"{cold[hi]['seconds']:.1f} s (<= 90), peak "
                  f"{cold[hi]['rss_gb']:.2f} GB (<= 4), cached {cached[hi]['seconds']:.1f} s (<= 10): "
                  f"{'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()
