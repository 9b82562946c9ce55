"""A Lightning callback that SIGKILLs its whole process group at the start of one trial's given epoch.

The resume test uses it to kill a sweep mid-trial at a fixed point, instead of polling the study and
racing training (which lost on fast machines: trial 1 could finish between two polls).
"""

from __future__ import annotations

import os
import signal

import lightning as L


class KillSweepAt(L.Callback):
    def __init__(self, trial: int, this_trial: int, epoch: int = 1) -> None:
        self.fire = int(trial) == int(this_trial)
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # By epoch `epoch`'s start, epoch `epoch - 1` was validated and reported to the study.
        if self.fire and trainer.current_epoch >= self.epoch:
            os.killpg(os.getpgrp(), signal.SIGKILL)
