"""Input pipeline benchmark: the harness against the seed notebook's pipeline, in one run on this machine.

    HF_HUB_OFFLINE=1 python benchmarks/input_pipeline.py [--data ../shared/data/jigsaw2018-sample]

1. Data set-up (read + validate + split + tokenize) of `dataset=jigsaw` with the backbone's tokenizer: cold
   (empty token cache) against cached (a second run), median of `--repeats` each.
2. Training throughput (samples/s) of the same model (MiniLM + mean head + BCE, fp32, AdamW) on the same
   training rows:
   - notebook: a Dataset that tokenizes each item in `__getitem__`, padded to 256, batch 16, shuffled,
     a plain PyTorch loop;
   - harness: `python train.py dataset=jigsaw` as configured (pre-tokenized cache, dynamic padding,
     length-grouped batches of 32, max_length 128, Lightning Trainer), and again with max_length=256 so the
     truncation is the notebook's and only the pipeline differs.
   Harness figures cover whole epochs (`--harness-batches` to cut them); the notebook pays the same cost
   for every step (every batch is 16 x 256), so `--steps` of it suffice. Notebook blocks run before and
   after the harness so that drift from other load on the machine shows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import lightning as L  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from modlab.cli import quiet_libraries  # noqa: E402
from modlab.data.datamodule import ModerationDataModule  # noqa: E402
from modlab.training.assemble import Backbone, build_datamodule, build_module  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "jigsaw2018-sample"


def config(data: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=["dataset=jigsaw", f"dataset.path={data}", *overrides])


def datamodule(cfg, backbone: Backbone, cache_dir: str, max_length: int | None = None) -> ModerationDataModule:
    """The harness's DataModule as train.py builds it, with its token cache in `cache_dir` (set up)."""
    overrides = [f"data.cache_dir={cache_dir}"] + ([f"data.max_length={max_length}"] if max_length else [])
    return build_datamodule(OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides)), backbone, None)


def time_setup(cfg, backbone: Backbone, repeats: int) -> dict:
    cold, cached = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            for times in (cold, cached):  # the first set-up fills the empty cache, the second reuses it
                start = time.perf_counter()
                datamodule(cfg, backbone, cache)
                times.append(time.perf_counter() - start)
    return {
        "cold_s": statistics.median(cold),
        "cached_s": statistics.median(cached),
        "cold_all": cold,
        "cached_all": cached,
    }


# --- the seed notebook's pipeline ----------------------------------------------------------------------------


class NotebookDataset(Dataset):
    """As in the seed notebook: tokenize in __getitem__, pad every item to 256."""

    def __init__(self, texts: list[str], labels: np.ndarray, tokenizer, max_length: int = 256) -> None:
        self.texts, self.labels, self.tokenizer, self.max_length = texts, labels, tokenizer, max_length

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> dict:
        enc = self.tokenizer(
            self.texts[i],
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {
            "input_ids": enc["input_ids"].squeeze(0),
            "attention_mask": enc["attention_mask"].squeeze(0),
            "labels": torch.tensor(self.labels[i], dtype=torch.float32),
        }


def notebook_throughput(model, loader, steps: int, warmup: int) -> dict:
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    marks, samples = [], []
    batches = iter(loader)
    for _ in range(warmup + steps):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        logits = model(batch["input_ids"], batch["attention_mask"])
        loss = loss_fn(logits, batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        marks.append(time.perf_counter())
        samples.append(len(batch["labels"]))
    seconds = marks[-1] - marks[warmup - 1]
    n = sum(samples[warmup:])
    return {"samples": n, "seconds": seconds, "samples_per_s": n / seconds}


# --- the harness -----------------------------------------------------------------------------------------------


class Throughput(L.Callback):
    """Samples/s over training batches after the first `warmup` (fetching the next batch included)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.marks, self.samples, self.tokens = warmup, [], [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.marks.append(time.perf_counter())
        self.samples.append(len(batch["labels"]))
        self.tokens.append(batch["input_ids"].numel())

    def result(self) -> dict:
        w = self.warmup
        seconds = self.marks[-1] - self.marks[w - 1]
        n = sum(self.samples[w:])
        return {
            "samples": n,
            "seconds": seconds,
            "samples_per_s": n / seconds,
            "batches": len(self.samples),
            "mean_padded_length": sum(self.tokens) / sum(self.samples),
        }


def harness_throughput(cfg, backbone: Backbone, dm: ModerationDataModule, warmup: int, batches: int | None, root: str) -> dict:
    L.seed_everything(cfg.seed, workers=True)
    cfg = OmegaConf.merge(cfg, {"trainer": {"precision": 32}})  # the notebook's precision; fp32 as measured before
    model = build_module(cfg, backbone, dm.label_names)  # fits its loss statistics on dm in setup()
    meter = Throughput(warmup)
    trainer = instantiate(
        cfg.trainer,
        callbacks=[meter],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=1,
        limit_train_batches=batches or 1.0,
        limit_val_batches=0,
        default_root_dir=root,
    )
    trainer.fit(model, datamodule=dm)
    return meter.result()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Kaggle Jigsaw folder (train.csv)")
    parser.add_argument("--steps", type=int, default=12, help="measured notebook steps per block (2 blocks)")
    parser.add_argument(
        "--harness-batches", type=int, default=None, help="cut each harness epoch to N batches"
    )
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured steps at the start of each run")
    parser.add_argument("--repeats", type=int, default=3, help="cold/cached set-up repetitions")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    quiet_libraries()
    import logging

    for name in ("lightning", "lightning.pytorch", "modlab"):  # rank-zero tips and few-positive warnings
        logging.getLogger(name).setLevel(logging.ERROR)

    cfg = config(args.data)
    backbone = Backbone.resolve(cfg.backbone)
    tokenizer = backbone.tokenizer
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; backbone {cfg.backbone.name}"
    )

    setup = time_setup(cfg, backbone, args.repeats)
    print(
        f"data set-up: cold {setup['cold_s']:.3f}s, cached {setup['cached_s']:.3f}s -> "
        f"{setup['cold_s'] / setup['cached_s']:.1f}x faster cached (median of {args.repeats})"
    )

    results: dict = {"setup": setup}
    with tempfile.TemporaryDirectory() as tmp:
        dm = datamodule(cfg, backbone, tmp)
        rows = dm.rows["train"]
        texts = [dm.table.texts[i] for i in rows]
        notebook_data = NotebookDataset(texts, dm.table.labels[rows], tokenizer)
        generator = torch.Generator().manual_seed(0)
        loader = DataLoader(notebook_data, batch_size=16, shuffle=True, generator=generator)

        def notebook_block(name: str) -> None:
            L.seed_everything(cfg.seed)
            model = build_module(cfg, backbone, dm.label_names)
            results[name] = notebook_throughput(model, loader, args.steps, args.warmup)
            print(
                f"{name}: {results[name]['samples_per_s']:.2f} samples/s "
                f"({results[name]['samples']} samples in {results[name]['seconds']:.1f}s)",
                flush=True,
            )

        def harness_block(name: str, module: ModerationDataModule) -> None:
            results[name] = harness_throughput(cfg, backbone, module, args.warmup, args.harness_batches, tmp)
            r = results[name]
            print(
                f"{name}: {r['samples_per_s']:.2f} samples/s ({r['samples']} samples in {r['seconds']:.1f}s, "
                f"{r['batches']} batches, mean padded length {r['mean_padded_length']:.1f})",
                flush=True,
            )

        notebook_block("notebook_a")
        harness_block("harness", dm)
        notebook_block("notebook_b")
        dm256 = datamodule(cfg, backbone, tmp, max_length=256)
        harness_block("harness_256", dm256)

    notebook = (results["notebook_a"]["samples_per_s"] + results["notebook_b"]["samples_per_s"]) / 2
    results["notebook_samples_per_s"] = notebook
    results["ratio"] = results["harness"]["samples_per_s"] / notebook
    results["ratio_256"] = results["harness_256"]["samples_per_s"] / notebook
    results["setup_ratio"] = setup["cold_s"] / setup["cached_s"]
    print()
    print("| pipeline | samples/s | vs notebook |")
    print("|---|---:|---:|")
    print(f"| notebook (tokenize in __getitem__, pad 256, batch 16, fp32) | {notebook:.2f} | 1.00x |")
    print(
        f"| harness default (cached tokens, dynamic padding, length-grouped, max_length 128, batch 32, fp32) | "
        f"{results['harness']['samples_per_s']:.2f} | {results['ratio']:.2f}x |"
    )
    print(
        f"| harness, max_length 256 (same truncation as the notebook) | "
        f"{results['harness_256']['samples_per_s']:.2f} | {results['ratio_256']:.2f}x |"
    )
    print(
        f"\ntraining throughput ratio (harness / notebook): {results['ratio']:.2f}x "
        f"(at max_length 256: {results['ratio_256']:.2f}x)"
    )
    print(f"data set-up ratio (cold / cached): {results['setup_ratio']:.1f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
