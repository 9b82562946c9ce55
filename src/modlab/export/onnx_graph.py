"""The exportable graph: encoder + the run's pooling head + sigmoid, traced to ONNX in eval mode.

`model.onnx` takes `input_ids` and `attention_mask` (int64, dynamic batch and sequence axes) and returns
`probs` (float32, [batch, labels]). What was measured on all-MiniLM-L6-v2 (benchmarks/inference.py) decided
how it is traced:

- the TorchScript exporter (`dynamo=False`) with eager attention: ONNX Runtime's transformer optimizer then
  fuses every layer's attention into one `Attention` op and the embeddings into `EmbedLayerNormalization`;
  neither fuses from the dynamo exporter's graph (SDPA or eager) nor from an SDPA trace, and the dynamo
  exporter takes ~6 s more per export;
- eval mode (dropout off): modlab keeps its encoders in train mode after from_pretrained.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch

from modlab.errors import ModlabError

INPUTS = ("input_ids", "attention_mask")
OUTPUT = "probs"
OPSET = 17  # LayerNormalization is a single op from 17 on
EXPORTER = "torchscript"


class ProbabilityGraph(torch.nn.Module):
    """module(input_ids, attention_mask) -> sigmoid(logits): exactly what model.onnx computes."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.module(input_ids, attention_mask).float())


@contextlib.contextmanager
def eager_attention(encoder: torch.nn.Module):
    """Eager attention for the trace (the pattern ONNX Runtime fuses), the encoder's own setting after."""
    config = encoder.config
    before = getattr(config, "_attn_implementation", None)
    try:
        encoder.set_attn_implementation("eager")
    except (ValueError, AttributeError, NotImplementedError):  # a model without implementation switching
        config._attn_implementation = "eager"
    try:
        yield
    finally:
        if before is not None and before != "eager":
            try:
                encoder.set_attn_implementation(before)
            except (ValueError, AttributeError, NotImplementedError):
                config._attn_implementation = before


def dummy_inputs(tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Two real texts of different lengths (batch and sequence >= 2, one row padded), as the graph sees them."""
    encoded = tokenizer(["an example text to trace the graph with, long enough to pad the other", "short"],
                        padding=True, return_tensors="pt", return_token_type_ids=False)
    return encoded["input_ids"].long(), encoded["attention_mask"].long()


def export(module: torch.nn.Module, tokenizer, path: str | Path) -> dict:
    """Trace `module` (a ModerationClassifier) to `path`; returns what the metadata says about the graph."""
    graph = ProbabilityGraph(module).eval()
    was_training = module.training
    module.eval()
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            OUTPUT: {0: "batch"}}
    try:
        with eager_attention(module.encoder), torch.no_grad(), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
            torch.onnx.export(graph, dummy_inputs(tokenizer), str(path), input_names=list(INPUTS),
                              output_names=[OUTPUT], dynamic_axes=axes, opset_version=OPSET, dynamo=False,
                              do_constant_folding=True)
    except Exception as err:  # noqa: BLE001 - the tracer raises many types; all mean the model does not export
        raise ModlabError(f"the model cannot be exported to ONNX ({type(err).__name__}: "
                          f"{' '.join(str(err).split())[:240]}); report it with the run's config.yaml") from None
    finally:
        module.train(was_training)
    return {"exporter": EXPORTER, "opset": OPSET, "inputs": list(INPUTS), "output": OUTPUT,
            "attention": "eager"}
