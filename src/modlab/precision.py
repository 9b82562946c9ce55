"""`trainer.precision=auto` and `modlab.load`'s default: the fastest precision this machine runs natively.

  GPU with bf16 (Ampere and newer)     bf16-mixed   GPU without it     16-mixed
  CPU with AMX or AVX512-BF16           bf16-mixed   other CPUs         32 (emulated bf16 is slower than fp32)

EXPERIMENTS.md ("bf16 vs fp32") has the quality check behind it: MiniLM on the Jigsaw sample, 3 seeds each.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

log = logging.getLogger(__name__)

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
AUTO = "auto"


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """CPU flags from /proc/cpuinfo (Linux); elsewhere no."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(f in flags for f in CPU_BF16_FLAGS)


def _on_gpu(accelerator: str) -> bool:
    import torch

    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def training_precision(requested, accelerator: str = "auto") -> tuple[str | int, str]:
    """(Lightning precision, why) for `trainer.precision`; anything but "auto" is returned as it is."""
    if str(requested) != AUTO:
        return requested, "as configured"
    import torch

    if _on_gpu(accelerator) and torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"{torch.cuda.get_device_name()} supports bf16"
        return "16-mixed", f"{torch.cuda.get_device_name()} has no bf16"
    if cpu_has_native_bf16():
        return "bf16-mixed", "this CPU has native bf16 matmuls (AMX or AVX512-BF16)"
    return 32, "this CPU has no native bf16 matmuls"


def warn_if_emulated(precision, on_gpu: bool, fix: str) -> bool:
    """bf16 asked for on a CPU that only emulates it (AVX2-only CPUs) runs ~9x slower than fp32 in MiniLM's
    Linear layers (EXPERIMENTS.md, the AVX2 host): say so, since nothing else would. True when it warned."""
    if on_gpu or "bf16" not in str(precision) or cpu_has_native_bf16():
        return False
    log.warning("precision %s on a CPU without native bf16 matmuls (no AMX, no AVX512-BF16) is emulated and far "
                "slower than fp32; %s", precision, fix)
    return True


def resolve_trainer(cfg) -> None:
    """Replace trainer.precision=auto in `cfg` by what it means here (saved so in config.yaml) and say so."""
    from omegaconf import open_dict

    trainer = cfg.get("trainer")
    if trainer is None:
        return
    accelerator = str(trainer.get("accelerator", "auto"))
    if str(trainer.get("precision")) != AUTO:
        warn_if_emulated(trainer.get("precision"), _on_gpu(accelerator), "use trainer.precision=auto (32 on this CPU)")
        return
    value, why = training_precision(AUTO, accelerator)
    with open_dict(cfg):
        cfg.trainer.precision = value
    log.info("trainer.precision=auto -> %s (%s)", value, why)
