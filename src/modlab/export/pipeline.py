"""`modlab export <run dir | .ckpt> [--out DIR] [--precision fp32|fp16|int8] [--force]`: checkpoint -> bundle.

load (weights_only) -> held-out texts + the PyTorch fp32 reference -> trace -> optimize / quantize ->
tokenizer files -> parity -> modlab.json -> rename into place. A parity miss fails the export and leaves no
bundle (with --force the bundle is written and the miss recorded in its metadata); any error leaves nothing.
"""

from __future__ import annotations

from pathlib import Path

from modlab.errors import ModlabError
from modlab.export import bundle, onnx_graph, parity
from modlab.export import precision as precisions
from modlab.predict import spec as specs
from modlab.predict.backends import OnnxBackend, TorchBackend
from modlab.predict.classifier import Classifier
from modlab.predict.encoding import RunEncoder
from modlab.rundir import RunDir


def default_out(ckpt: Path, run: RunDir | None, precision: str) -> Path:
    """<run dir>/bundle-<precision>, or <ckpt dir>/<ckpt stem>-bundle-<precision> outside a run."""
    if run is not None:
        return run.path / f"bundle-{precision}"
    return ckpt.parent / f"{ckpt.stem}-bundle-{precision}"


def export(path: str | Path, out: str | Path | None = None, precision: str = "fp32",
           force: bool = False) -> tuple[Path, parity.Parity]:
    """The bundle's path and its parity figures."""
    precisions.check(precision)
    source = Path(str(path)).expanduser()
    if bundle.is_bundle(source):
        raise ModlabError(f"{source} is already a bundle; export from the run dir or .ckpt it was exported from")
    from modlab.training import assemble, checkpoints

    ckpt, run = specs.locate_checkpoint(source)
    spec = specs.from_checkpoint(ckpt, run, checkpoints.hparams(ckpt))
    module, backbone = assemble.load_classifier(ckpt)
    target = Path(out).expanduser() if out else default_out(ckpt, run, precision)
    tokenizer = bundle.tokenizer_info(backbone.tokenizer)

    texts = parity.held_out_texts(run, backbone, list(spec.labels))
    reference = Classifier(spec, RunEncoder(backbone.tokenizer, spec.max_length),
                           TorchBackend(module, device="cpu", precision="fp32"))
    expected = reference.predict_proba(texts.texts)

    with bundle.building(target) as work:
        traced = work / "traced.onnx"
        graph = onnx_graph.export(module, backbone.tokenizer, traced)
        graph |= precisions.build(traced, work / bundle.MODEL, precision, module.encoder.config)
        traced.unlink()
        backbone.tokenizer.save_pretrained(str(work))

        # The candidate as a user gets it: the saved tokenizer.json and model.onnx, read back from the new bundle.
        saved = bundle.Bundle(work, {"tokenizer": tokenizer}, spec, precision, (work / bundle.MODEL).read_bytes())
        candidate = Classifier(spec, saved.encoder(), OnnxBackend(saved.model, precision))
        result = parity.compare(precision, expected, candidate.predict_proba(texts.texts), spec.threshold_array(),
                                texts, list(spec.labels))
        if not result.passed:
            if not force:
                raise ModlabError(f"{result.line()}; no bundle written (--force writes it anyway and records the "
                                  f"miss in {bundle.METADATA})")
            result.forced = True
        bundle.write_metadata(work, bundle.metadata(spec, precision, graph, tokenizer, result.as_dict(),
                                                     work / bundle.MODEL))
        bundle.read(work)  # what modlab.load will check, before the bundle is in place
    return target, result
