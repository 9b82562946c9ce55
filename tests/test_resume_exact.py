"""Exact resume: a run SIGKILLed mid-epoch and resumed from last.ckpt ends bit-identical to one never stopped.

`KillAt` is a test-only Lightning callback (`+callbacks.kill=...`, tests/ on PYTHONPATH) that SIGKILLs its
own process at a fixed batch: no clean shutdown, no checkpoint of the epoch it dies in, and a fixed point
instead of a race with a timer.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch
from conftest import FAST, ROOT

from modlab.data.tokens import LengthGroupedSampler
from modlab.training import resume_state


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
    proc = train_py(*RUN, root=a)  # A: never stopped
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = newest(a, "metrics.json")

    proc = train_py(*RUN, KILL, root=b)  # B: same seed, SIGKILLed in epoch 2
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-3000:])
    assert not list(b.rglob("metrics.json"))
    last = newest(b, "last.ckpt")
    saved = torch.load(last, map_location="cpu", weights_only=True)  # what every checkpoint reader does
    assert saved["epoch"] == 1, saved["epoch"]  # epoch 1's checkpoint is the last complete one
    rng = saved["callbacks"]["RandomState"]["ranks"][0]
    assert rng["torch"].dtype == torch.uint8 and rng["numpy"]["keys"].shape == (624,)

    proc = train_py(*RUN, KILL, f"ckpt_path={last}", root=b)  # B resumed: same overrides
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected, got = read_metrics(reference), read_metrics(newest(b, "metrics.json"))
    assert got.keys() == expected.keys()
    differ = {k: (expected[k], got[k]) for k in expected if not same(expected[k], got[k])}
    assert not differ, differ

    ours = torch.load(newest(b, "last.ckpt"), map_location="cpu", weights_only=True)
    theirs = torch.load(newest(a, "last.ckpt"), map_location="cpu", weights_only=True)
    assert ours["global_step"] == theirs["global_step"]
    assert all(torch.equal(ours["state_dict"][k], v) for k, v in theirs["state_dict"].items())


def test_sampler_order_depends_on_seed_and_epoch_only():
    lengths = np.random.default_rng(0).integers(3, 60, size=300)
    sampler = LengthGroupedSampler(lengths, batch_size=16, seed=7, mega=4)
    epochs = [list(sampler) for _ in range(3)]  # a plain loop: each pass is the next epoch
    assert all(sorted(order) == list(range(300)) for order in epochs)
    assert len({tuple(order) for order in epochs}) == 3
    sampler.set_epoch(2)
    assert list(sampler) == epochs[2] and list(sampler) == sampler.order(3)  # ... and then moves on
    fresh = LengthGroupedSampler(lengths, batch_size=16, seed=7, mega=4)
    fresh.set_epoch(1)  # a resumed run: Lightning sets the checkpoint's epoch, not 0
    assert list(fresh) == epochs[1]
    assert LengthGroupedSampler(lengths, batch_size=16, seed=8, mega=4).order(1) != epochs[1]


def test_generator_states_survive_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    random.gauss(0, 1)  # a cached Gaussian in Python's state too
    torch.save({"rng": resume_state.capture()}, tmp_path / "s.ckpt")
    expected = (torch.rand(5), np.random.rand(5), random.random(), random.gauss(0, 1))
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    resume_state.restore(torch.load(tmp_path / "s.ckpt", weights_only=True)["rng"])
    got = (torch.rand(5), np.random.rand(5), random.random(), random.gauss(0, 1))
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2:] == expected[2:]
