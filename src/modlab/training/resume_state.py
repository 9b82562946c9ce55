"""Exact resume: every checkpoint carries the random generators' states, and a resumed fit restores them.

Lightning restores weights, optimizer, scheduler, loop counters and callback states, and tells samplers
the epoch (`set_epoch`), but not the global random generators: a run resumed from `last.ckpt` would draw
its dropout masks (torch), its DataLoader seeds (torch) and anything taken from numpy's or Python's global
generators from the seed set at start, not from where the checkpoint left them, and end with other
metrics than the run that was never stopped. `RandomState` (conf/callbacks/default.yaml) makes the two
bit-identical: its callback state is torch's CPU generator, every CUDA device's, numpy's and Python's,
captured when a checkpoint is written and put back when a fit resumes from it.

Everything is stored as tensors and plain numbers, so `torch.load(weights_only=True)` reads it
(modlab.training.checkpoints). Under DDP each rank has generators of its own: all ranks' states are
gathered into the checkpoint and each rank gets its own back when the world size matches.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import lightning as L
import numpy as np
import torch

log = logging.getLogger(__name__)


def capture() -> dict[str, Any]:
    """This process's generator states as tensors and plain numbers (what weights_only=True loads)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    # Only when CUDA is already in use: querying its states would otherwise initialize it for nothing.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore(state: dict[str, Any]) -> None:
    """Put back what `capture` saved (a checkpoint read with weights_only=True gives it back unchanged)."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss_next"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            log.warning("checkpoint has CUDA generator states of %d devices, this machine %d; CUDA draws "
                        "(dropout on GPU) after the resume will differ from an uninterrupted run",
                        len(cuda), torch.cuda.device_count())


def _gather(trainer: L.Trainer, state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's state (in rank order); a checkpoint is written by rank 0 only."""
    if trainer.world_size == 1 or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return [state]
    states: list[Any] = [None] * torch.distributed.get_world_size()
    # Every rank dumps each checkpoint (Lightning requires trainer.save_checkpoint on all ranks), so this
    # collective is reached by all of them in the same order.
    torch.distributed.all_gather_object(states, state)
    return states


class RandomState(L.Callback):
    """Generator states into each checkpoint; back into the generators when a fit resumes from one."""

    def __init__(self) -> None:
        self._trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Runs before Lightning restores callbacks; state_dict/load_state_dict get no trainer of their own.
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        state = capture()
        return {"ranks": _gather(self._trainer, state) if self._trainer is not None else [state]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Restored now, at the point of the resumed fit that matches where the checkpoint was written: next
        # come the training DataLoader's iterator (it draws its base seed) and the first batch, as in the
        # run that was never stopped (Lightning's sanity check, if any, runs with its draws isolated).
        # validate/test also load callback states (the best checkpoint after fit): nothing to restore there.
        trainer = self._trainer
        if trainer is not None and trainer.state.fn != "fit":
            return
        ranks = state_dict["ranks"]
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        if len(ranks) != world:
            log.warning("checkpoint holds generator states of %d ranks, this run has %d; every rank restores "
                        "rank 0's, so random draws after the resume differ from an uninterrupted run",
                        len(ranks), world)
        restore(ranks[rank] if len(ranks) == world else ranks[0])

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn == "fit" and self.state_key not in (checkpoint.get("callbacks") or {}):
            log.warning("checkpoint %s has no random generator states (written before modlab stored them): "
                        "training resumes, but not bit-identical to an uninterrupted run", trainer.ckpt_path)
