"""Pruning pays: the same sweep without and with a pruner, in one run, on a fixed synthetic task.

Both sweeps draw the same configurations (random sampler, per-trial seeds: trial n gets the same point in
both), so they differ only in how long each trial trains. Reports the best value of each and the training
epochs each spent, and checks: pruned best within 0.01 of the unpruned best, pruned epochs <= 50%.

    python benchmarks/sweep_pruning.py                     # defaults below; ~15 min on 2 busy CPU cores
    python benchmarks/sweep_pruning.py --trials 8 --epochs 4   # quicker, noisier

Outputs (studies, trial dirs) go under --root (default: a fresh temporary directory).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def task(args) -> list[str]:
    """The fixed task: tiny backbone, synthetic data, a wide log-uniform lr range (both ends hopeless)."""
    return [
        "backbone.tiny=true", f"dataset.reader.size={args.rows}", "data.max_length=32", "callbacks.progress_bar=null",
        "callbacks.early_stopping=null", "logger=none", "report.enabled=false", "test=false",
        f"trainer.max_epochs={args.epochs}", "optim.head_lr=null",
        "hydra/sweeper=modlab_optuna", f"optim.lr=tag(log,interval({args.lr_low},{args.lr_high}))",
        f"hydra.sweeper.n_trials={args.trials}", "hydra.sweeper.sampler=random", f"hydra.sweeper.seed={args.seed}",
    ]


def arm(args, name: str, pruner: list[str], root: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *task(args), f"hydra.sweeper.study_name={name}", *pruner]
    env = {**os.environ, "MODLAB_ROOT": str(root), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    (root / f"{name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"{name} sweep failed (exit {proc.returncode}); see {root / (name + '.log')}")
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{root}/outputs/optuna/{name}.db")
    trials = study.trials
    return {
        "study": name, "command": " ".join(cmd[1:]), "seconds": round(seconds, 1), "best": study.best_value,
        "best_trial": study.best_trial.number, "best_lr": study.best_params["optim.lr"],
        "epochs": sum(int(t.user_attrs.get("epochs") or 0) for t in trials),
        "states": {s: sum(t.state.name == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")},
        "per_trial": [(t.number, t.state.name, round(t.params["optim.lr"], 6), t.user_attrs.get("epochs"),
                       None if t.value is None else round(t.value, 4)) for t in trials],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--rows", type=int, default=400)
    p.add_argument("--lr-low", type=float, default=1e-6)
    p.add_argument("--lr-high", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pruner", default="median")
    p.add_argument("--pruner-args", default="{n_startup_trials:3,n_warmup_steps:0}")
    p.add_argument("--root", type=Path, default=None)
    args = p.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="sweep_pruning_"))
    root.mkdir(parents=True, exist_ok=True)

    base = arm(args, "unpruned", ["hydra.sweeper.pruner=none"], root)
    pruned = arm(args, "pruned", [f"hydra.sweeper.pruner={args.pruner}",
                                  f"++hydra.sweeper.pruner_args={args.pruner_args}"], root)
    gap = base["best"] - pruned["best"]
    ratio = pruned["epochs"] / base["epochs"]
    print(f"{'sweep':10} {'best':>8} {'trial':>5} {'epochs':>6} {'seconds':>8}  states")
    for r in (base, pruned):
        print(f"{r['study']:10} {r['best']:8.4f} {r['best_trial']:5d} {r['epochs']:6d} {r['seconds']:8.1f}  {r['states']}")
    print(f"best gap (unpruned - pruned): {gap:+.4f}  (ok: <= 0.01)")
    print(f"epochs pruned / unpruned:     {ratio:.2f}  (ok: <= 0.50)")
    print(f"wall time pruned / unpruned:  {pruned['seconds'] / base['seconds']:.2f}")
    print("per trial (number, state, lr, epochs, value):")
    for a, b in zip(base["per_trial"], pruned["per_trial"], strict=False):
        print(f"  {a}  |  {b}")
    (root / "sweep_pruning.json").write_text(json.dumps({"unpruned": base, "pruned": pruned, "gap": gap,
                                                          "epoch_ratio": ratio}, indent=2))
    print(f"details: {root / 'sweep_pruning.json'}")
    return 0 if gap <= 0.01 and ratio <= 0.5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
