"""The two ways a padded batch becomes probabilities: the PyTorch module, or a bundle's ONNX graph.

A backend takes `input_ids` and `attention_mask` (int64, [batch, length]) and returns float32 probabilities
[batch, labels]; tokenizing, batching and thresholds are the Classifier's. Each picks the fastest precision
for its device unless one is asked for:

  torch         cuda: bf16 autocast where supported, else fp16; cpu: bf16 autocast on CPUs with native
                bf16 matmuls (AMX or AVX512-BF16, ~3x fp32 eager), else fp32
  onnxruntime   the bundle's precision (fp32, fp16, int8); CUDA when onnxruntime-gpu has it, except int8
                (dynamic quantization runs on the CPU)
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from modlab.errors import ModlabError
from modlab.precision import cpu_has_native_bf16, warn_if_emulated

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
TORCH_PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(precision: str | None) -> str | None:
    if precision is not None and precision not in PRECISIONS:
        raise ModlabError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}; "
                          f"leave it unset for the fastest path of the device")
    return precision


class TorchBackend:
    """A ModerationClassifier (eval mode) on one device; bf16/fp16: autocast, its Linear layers cast once."""

    name = "torch"

    def __init__(self, module, device: str | None = None, precision: str | None = None,
                 threads: int | None = None) -> None:
        import torch

        if threads is not None:
            torch.set_num_threads(int(threads))  # process-wide, so only when asked
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ModlabError(f"device={self.device!r} is not cpu or cuda[:N]")
        on_gpu = self.device != "cpu"
        if precision is None:
            precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if on_gpu else \
                ("bf16" if cpu_has_native_bf16() else "fp32")
        if precision not in TORCH_PRECISIONS or (precision == "fp16" and not on_gpu):
            hint = "int8 runs from a bundle: `modlab export <run> --precision int8`" if precision == "int8" \
                else "fp16 needs a GPU on the PyTorch path; use fp32 or bf16 on a CPU"
            raise ModlabError(f"precision={precision} is not available for a checkpoint on {self.device}; {hint}")
        warn_if_emulated(precision, on_gpu, "leave precision unset for the fastest path (fp32 on this CPU)")
        self.precision = precision
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.module = module.to(self.device).eval()
        if self.dtype is not None:
            # Autocast runs every Linear in the low dtype anyway, casting its weights on every call; casting
            # them once gives the same numbers without the copies (3.4x fp32 instead of 2.6x on an AMX CPU).
            for layer in self.module.modules():
                if isinstance(layer, torch.nn.Linear):
                    layer.to(self.dtype)
        self._torch = torch

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        ids = torch.from_numpy(input_ids).to(self.device)
        mask = torch.from_numpy(attention_mask).to(self.device)
        kind = "cuda" if self.device.startswith("cuda") else "cpu"
        cast = torch.autocast(kind, dtype=self.dtype) if self.dtype is not None else contextlib.nullcontext()
        with torch.inference_mode(), cast:
            logits = self.module(ids, mask)
        return torch.sigmoid(logits.float()).cpu().numpy()


class OnnxBackend:
    """An ONNX Runtime session over a bundle's model.onnx bytes (already hash-checked by the caller)."""

    name = "onnxruntime"

    def __init__(self, model: bytes, precision: str, device: str | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1  # one graph at a time: parallelism is inside the matmuls
        available = ort.get_available_providers()
        gpu = "CUDAExecutionProvider" in available and precision != "int8" and device != "cpu"
        if device is not None and device != "cpu" and not gpu:
            raise ModlabError(f"device={device} asked for, but this onnxruntime has no CUDA provider for a "
                              f"{precision} bundle (install onnxruntime-gpu; int8 bundles run on the CPU)")
        if precision == "fp16" and not gpu:
            log.warning("an fp16 bundle on the CPU is slower than fp32; export --precision fp32 or int8 for CPUs")
        providers = (["CUDAExecutionProvider"] if gpu else []) + ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(model, sess_options=options, providers=providers)
        except Exception as err:  # noqa: BLE001 - ORT raises its own types; any of them means the same
            raise ModlabError(f"onnxruntime cannot load the bundle's model.onnx ({' '.join(str(err).split())[:240]}); "
                              f"export it again with `modlab export`") from None
        self.device, self.precision = ("cuda" if gpu else "cpu"), precision
        self.output = self.session.get_outputs()[0].name

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        return np.asarray(self.session.run([self.output], feed)[0], dtype=np.float32)
