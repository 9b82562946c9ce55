"""Exact resume: a run SIGKILLed mid-epoch and resumed from last.ckpt ends bit-identical to one never stopped.

`KillAt` is a test-only Lightning callback (`+callbacks.kill=...`, tests/ on PYTHONPATH) that SIGKILLs its
own process at a fixed batch: no clean shutdown, no checkpoint of the epoch it dies in, and a fixed point
instead of a race with a timer.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import torch
from conftest import FAST, ROOT


class KillAt(L.Callback):
    """Test-only: SIGKILL this process after batch `batch` of epoch `epoch` (0-based) of a fresh fit.

    A resumed fit (trainer.ckpt_path set) never fires: resuming keeps the original run's callbacks.
    """

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.ckpt_path is None and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


def train_py(*args: str, root: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, MODLAB_ROOT=str(root), PYTHONPATH=os.pathsep.join(
        [str(ROOT / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def newest(root: Path, name: str) -> Path:
    found = sorted(root.rglob(name), key=lambda p: p.stat().st_mtime_ns)
    assert found, f"no {name} under {root}"
    return found[-1]


def read_metrics(path: Path) -> dict[str, float]:
    return {k: math.nan if v is None else v for k, v in json.loads(path.read_text()).items()}


def same(a: float, b: float) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


# Tiny model with dropout, length-grouped batches, 4 epochs; killed in the third (0-based epoch 2).
RUN = [*FAST, "trainer.max_epochs=4", "data.length_grouping=true"]
KILL = "+callbacks.kill={_target_: test_resume_exact.KillAt, epoch: 2, batch: 2}"


def test_sigkilled_run_resumed_from_last_ckpt_matches_the_uninterrupted_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    proc = train_py(*RUN, KILL, root=a)  # the same callback, which never fires past 4 epochs... see below
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]  # it does fire: A is the control below
    # The control run: same overrides, no kill.
    proc = train_py(*RUN, root=a)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = newest(a, "metrics.json")

    proc = train_py(*RUN, KILL, root=b)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-3000:])
    assert not list(b.rglob("metrics.json"))
    last = newest(b, "last.ckpt")
    saved = torch.load(last, map_location="cpu", weights_only=True)  # what every checkpoint reader does
    assert saved["epoch"] == 1, saved["epoch"]  # killed in epoch 2, after epoch 1's checkpoints
    rng = saved["callbacks"]["RandomState"]["ranks"][0]
    assert rng["torch"].dtype == torch.uint8 and rng["numpy"]["keys"].shape == (624,)

    proc = train_py(*RUN, KILL, f"ckpt_path={last}", root=b)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected, got = read_metrics(reference), read_metrics(newest(b, "metrics.json"))
    assert got.keys() == expected.keys()
    differ = {k: (expected[k], got[k]) for k in expected if not same(expected[k], got[k])}
    assert not differ, differ

    ours = torch.load(newest(b, "last.ckpt"), map_location="cpu", weights_only=True)
    theirs = torch.load(newest(a, "last.ckpt"), map_location="cpu", weights_only=True)
    assert ours["global_step"] == theirs["global_step"]
    assert all(torch.equal(ours["state_dict"][k], v) for k, v in theirs["state_dict"].items())


def test_the_length_grouped_order_is_a_function_of_seed_and_epoch():
    import numpy as np

    from modlab.data.tokens import LengthGroupedSampler

    lengths = np.random.default_rng(0).integers(1, 60, size=500)
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=3)
    first, second = list(sampler), list(sampler)  # a plain loop moves on an epoch per iteration
    assert first != second and sorted(first) == sorted(second) == list(range(500))
    sampler.set_epoch(1)  # what Lightning does before epoch 1 of a resumed run
    assert list(sampler) == second
    resumed = LengthGroupedSampler(lengths, batch_size=8, seed=3)
    resumed.set_epoch(0)
    assert list(resumed) == first
