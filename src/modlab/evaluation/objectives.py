"""Extra objectives for multi-objective sweeps: model size and single-example inference latency.

`modlab.training.train.run` adds `model/params` to every run's metrics and `model/latency_ms` when
`optimized_metric` asks for it (it costs a few dozen forward passes), so a sweep can
maximize `val/auroc_macro` while minimizing either.
"""

from __future__ import annotations

import statistics
import time

from modlab.errors import ModlabError

PARAMS = "model/params"
LATENCY = "model/latency_ms"


def metric_names(optimized_metric) -> list[str]:
    if optimized_metric is None:
        return []
    return [optimized_metric] if isinstance(optimized_metric, str) else [str(m) for m in optimized_metric]


def count_params(model) -> float:
    return float(sum(p.numel() for p in model.parameters()))


def latency_ms(model, datamodule, n: int = 16, warmup: int = 3) -> float:
    """Median milliseconds of one forward pass on a single validation example, on the model's device."""
    import torch

    batch = next(iter(datamodule.val_dataloader()), None)
    if batch is None:
        raise ModlabError(f"{LATENCY} is measured on a validation example but the validation split is empty; "
                          f"set data.val_size > 0 or drop {LATENCY} from optimized_metric")
    device = next(model.parameters()).device
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
            for i in range(warmup + n):
                row = i % len(ids)
                start = time.perf_counter()
                model(ids[row: row + 1], mask[row: row + 1])
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000.0)
    finally:
        model.train(was_training)
    return float(statistics.median(times))


def extra_metrics(model, datamodule, optimized_metric) -> dict[str, float]:
    """What run() adds to its metrics: the parameter count always, latency only when optimized."""
    out = {PARAMS: count_params(model)}
    if LATENCY in metric_names(optimized_metric):
        out[LATENCY] = latency_ms(model, datamodule)
    return out
