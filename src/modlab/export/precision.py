"""From the traced fp32 graph to the bundle's model.onnx at the asked precision.

fp32  ONNX Runtime's transformer optimizer (model_type bert: fused Attention, EmbedLayerNormalization,
      SkipLayerNormalization, BiasGelu), written with Python fusions only, so the file runs on any provider
int8  the traced graph with ONNX Runtime dynamic quantization of every `MatMul` with a constant weight (the
      Q/K/V, attention-output and feed-forward projections: nearly all FLOPs), int8 weights per output
      channel; the pooling head's `Gemm`, embeddings and norms stay fp32. Not the optimized graph: there the
      Q/K/V projection sits inside `Attention`, which quantizes to a `QAttention` that ran slower on an AMX
      CPU than three quantized MatMuls that the session's own optimizer fuses (MiniLM, one thread:
      batch 1 101 vs 126 samples/s, batch 32 90 vs 115; benchmarks/inference.py --explore)
fp16  the optimized graph with float16 weights and compute for GPUs; inputs and `probs` stay as in fp32

Every result is checked against the PyTorch module by modlab.export.parity before it becomes a bundle.
"""

from __future__ import annotations

import logging
from pathlib import Path

from modlab.errors import ModlabError

EXPORT_PRECISIONS = ("fp32", "fp16", "int8")
INT8_OPS = ["MatMul"]


def check(precision: str) -> str:
    if precision not in EXPORT_PRECISIONS:
        raise ModlabError(f"--precision {precision!r} is not one of {', '.join(EXPORT_PRECISIONS)} "
                          f"(fp32 for CPUs and GPUs, int8 for CPUs, fp16 for GPUs)")
    return precision


def _heads_and_width(config) -> tuple[int, int]:
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
    width = getattr(config, "hidden_size", None) or getattr(config, "dim", 0)
    return int(heads), int(width)


def optimize(source: Path, target: Path, encoder_config):
    """The transformer optimizer's fusions (Python only: opt_level 0 leaves provider-specific rewrites to
    the session that loads the file). Returns the optimized OnnxModel and the fused-op counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    heads, width = _heads_and_width(encoder_config)
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)  # its fusion chatter
    model = optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=width, opt_level=0)
    fused = {op: n for op, n in model.get_fused_operator_statistics().items() if n}
    model.save_model_to_file(str(target))
    return model, fused


def to_int8(source: Path, target: Path) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Shape inference cannot type the outputs of the fused com.microsoft ops; they are float. The quantizer's
    # advice to pre-process (symbolic shape inference) goes to the root logger; it does not apply to a graph
    # that is already fused, so it is kept out of the user's output.
    root = logging.getLogger()
    advice = _DropAdvice()
    root.addFilter(advice)
    try:
        quantize_dynamic(str(source), str(target), op_types_to_quantize=INT8_OPS, weight_type=QuantType.QInt8,
                         per_channel=True, extra_options={"MatMulConstBOnly": True,
                                                          "DefaultTensorType": TensorProto.FLOAT})
    finally:
        root.removeFilter(advice)


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def to_fp16(model, target: Path) -> None:
    """`model` is the optimizer's OnnxModel; keep_io_types leaves the int64 inputs and float32 probs."""
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(target))


def build(raw: Path, target: Path, precision: str, encoder_config) -> dict:
    """model.onnx at `target` from the traced graph `raw`; returns what the metadata says about it."""
    if precision == "int8":
        to_int8(raw, target)
        return {"optimizer": None, "fused": {}, "quantized": f"dynamic int8 per channel: {', '.join(INT8_OPS)}"}
    optimized = target.parent / "optimized.onnx"
    model, fused = optimize(raw, optimized, encoder_config)
    if precision == "fp32":
        optimized.replace(target)
    else:
        to_fp16(model, target)
        optimized.unlink()
    return {"optimizer": "onnxruntime.transformers bert (opt_level 0)", "fused": fused, "quantized": None}
