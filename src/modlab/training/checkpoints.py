"""Reading a checkpoint a user hands us, without running code from it.

Every reader of a `.ckpt` (train resume, eval, export, predict, serve) goes through `read()`: torch's
`weights_only=True` unpickler, which rebuilds tensors and plain containers only and refuses any other
global, so a crafted pickle's `__reduce__` never runs. A modlab checkpoint holds nothing else (its
hyperparameters are plain dicts; RNG states are tensors). Files that are not checkpoints at all (empty,
truncated, text, random bytes) fail with one line before torch's own messages can mislead.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from modlab.errors import ModlabError

REQUIRED_HPARAMS = ("backbone", "head", "loss", "labels")


def read(path: str | Path, mmap: bool = True) -> dict:
    """The checkpoint dict, tensors memory-mapped (a peek at the hyperparameters reads no weights)."""
    path = Path(path)
    if not path.is_file():
        raise ModlabError(f"checkpoint {path} does not exist; pass a run dir or its checkpoints/best.ckpt")
    size = path.stat().st_size
    if size == 0:
        raise ModlabError(f"checkpoint {path} is empty (0 bytes); a crash or a full disk while it was written? "
                          f"use the run's other checkpoint (best.ckpt / last.ckpt) or re-train")
    if not zipfile.is_zipfile(path):
        raise ModlabError(f"checkpoint {path} ({size} bytes) is not a PyTorch checkpoint (truncated, or not a "
                          f".ckpt written by modlab); use a run's checkpoints/best.ckpt")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        what = " ".join(str(err).split("\n\n")[0].split())[:240]
        raise ModlabError(f"checkpoint {path} holds objects a modlab checkpoint never holds, so it was not "
                          f"loaded (loading it could run code): {what}; use a checkpoint trained by modlab") from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError) as err:
        raise ModlabError(f"checkpoint {path} cannot be read ({' '.join(str(err).split())[:200]}); it may be "
                          f"truncated: use the run's other checkpoint or re-train") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ModlabError(f"checkpoint {path} has no state_dict; it is not a Lightning checkpoint written by modlab")
    return checkpoint


def hparams(path: str | Path) -> dict:
    """What a modlab checkpoint says about its model: backbone/head/loss/optim blocks and label names."""
    found = read(path).get("hyper_parameters") or {}
    missing = [k for k in REQUIRED_HPARAMS if k not in found]
    if missing:
        raise ModlabError(f"checkpoint {path} is not a modlab checkpoint (no {', '.join(missing)} "
                          f"hyperparameters); use a run's checkpoints/best.ckpt")
    return found


def load_state(module: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """The checkpoint's weights into a module built from its hyperparameters."""
    state = read(path, mmap=False)["state_dict"]
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        first = " ".join(str(err).split())[:240]
        raise ModlabError(f"checkpoint {path} does not fit the model its hyperparameters describe ({first}); "
                          f"the checkpoint is damaged or was edited: use a run's own checkpoints/best.ckpt") from None
    return module
