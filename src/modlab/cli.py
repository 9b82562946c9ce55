"""The `modlab` command (its subcommands for users), and the one-line error wrapper the Hydra entry points share."""

from __future__ import annotations

import functools
import logging
import os
import sys

from modlab.errors import ModlabError


def quiet_libraries() -> None:
    """One copy of each log line (Lightning adds its own handler) and no weight-loading progress bars."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import lightning  # noqa: F401  (installs its handler on import; undo it so Hydra's handlers get the lines)
    from transformers.utils import logging as hf_logging

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def one_line_errors(fn):
    """A ModlabError in a single run exits 2 with one line; in a multirun it propagates to the sweeper.

    A full or read-only disk is such an error wherever it strikes (checkpoints say so themselves, see
    modlab.training.checkpoint_io; config.yaml, the CSV logger, a token cache have no handler of their own):
    the OSError becomes a ModlabError naming the file and the fix. Other OSErrors keep their traceback.
    """

    @functools.wraps(fn)
    def wrapper(cfg):
        quiet_libraries()
        try:
            try:
                return fn(cfg)
            except OSError as err:
                import errno

                from modlab.training.checkpoint_io import NO_SPACE, disk_error

                if err.errno not in NO_SPACE | {errno.EROFS}:  # only errors a write, never a read, gives
                    raise
                raise disk_error(err.filename or "(a file the OS did not name)", err, "file") from err
        except ModlabError as err:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(getattr(err, "exit_code", 2))  # 3: a failed quality gate (modlab.evaluation.gate)

    return wrapper


# --- `modlab data ...` -------------------------------------------------------------------------------------


def _add_data(parser) -> None:
    data = parser.add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="write synthetic data as JSONL (read it back with dataset=jsonl)")
    synth.add_argument("--out", required=True, help="JSONL file to write")
    synth.add_argument("--size", type=int, default=3000)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--taxonomy", default="jigsaw", help="jigsaw | trust_safety")
    synth.add_argument("--labels", default=None, help="comma-separated subset of the taxonomy")
    synth.add_argument("--positive-rate", type=float, default=0.35)
    synth.add_argument("--hard-negative-rate", type=float, default=0.1)
    synth.add_argument("--perturb-rate", type=float, default=0.1)
    shapes = 'labels as {"cat": 0/1, ...} (dict) or {"<target>": [names]} (list)'
    synth.add_argument("--shape", choices=["dict", "list"], default="dict", help=shapes)
    synth.add_argument("--target", default="moderation", help="the target name for --shape list")
    synth.set_defaults(handler=_data_synth)


def _data_synth(args) -> int:
    from pathlib import Path

    from modlab.data import jsonl, synthetic

    if Path(args.out).is_dir():  # checked before generating: writing would fail with IsADirectoryError
        raise ModlabError(f"--out {args.out} is a directory; give a file path, e.g. --out {Path(args.out) / 'synthetic.jsonl'}")
    table = synthetic.generate(
        size=args.size,
        seed=args.seed,
        taxonomy=args.taxonomy,
        labels=args.labels.split(",") if args.labels else None,
        positive_rate=args.positive_rate,
        hard_negative_rate=args.hard_negative_rate,
        perturb_rate=args.perturb_rate,
    )
    path = jsonl.write(table, args.out, shape=args.shape, target=args.target)
    counts = (table.labels >= 0.5).sum(axis=0)
    positives = ", ".join(f"{n} {int(c)}" for n, c in zip(table.label_names, counts, strict=True))
    print(f"wrote {len(table)} rows to {path} (positives: {positives})")
    return 0


# --- `modlab compare ...` ----------------------------------------------------------------------------------

def _add_compare(parser) -> None:
    parser.add_argument("paths", nargs="+", help="run dirs, or dirs to search for runs (a multirun dir)")
    parser.add_argument("--out", default=None, help="where to write compare.md/.png (default: the runs' common dir)")
    parser.add_argument("--split", choices=["test", "val"], default=None,
                        help="split of the per-label columns (default: test when the run has it)")
    parser.add_argument("--sort", default=None, help="metric to rank by (default: each run's optimized_metric)")
    parser.add_argument("--no-plot", action="store_true", help="skip compare.png")
    parser.add_argument("--each", "--no-aggregate", action="store_true",
                        help="one row per run (default: repeats over seeds/folds as one mean ± std row)")
    parser.add_argument("--paired", action="store_true",
                        help="A B: print A - B of the --sort metric with a 95%% interval (paired t over shared "
                             "folds/seeds; one run each: a bootstrap of ROC-AUC over the test rows)")
    parser.add_argument("--resamples", type=int, default=1000, help="--paired bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="--paired bootstrap seed (default 0)")
    parser.set_defaults(handler=_compare)


def _compare(args) -> int:
    from modlab.reporting.compare import compare, paired

    if args.paired:
        paired(args.paths, split=args.split, sort_by=args.sort, resamples=args.resamples, seed=args.seed)
        return 0
    compare(args.paths, out=args.out, split=args.split, sort_by=args.sort, draw=not args.no_plot,
            combine=not args.each)
    return 0


def _add_sync(parser) -> None:
    parser.add_argument("paths", nargs="*", default=["outputs"], help="dirs to search (default: outputs)")
    parser.add_argument("--dry-run", action="store_true", help="list the offline runs, upload nothing")
    parser.add_argument("--include-synced", action="store_true", help="upload runs synced before, again")
    parser.set_defaults(handler=_sync)


def _sync(args) -> int:
    from modlab.tracking.sync import sync

    return sync(args.paths, dry_run=args.dry_run, extra=["--include-synced"] if args.include_synced else None)


# --- `modlab baseline ...` ---------------------------------------------------------------------------------

def _add_baseline(parser) -> None:
    kinds = parser.add_subparsers(dest="baseline_command", required=True)
    tfidf = kinds.add_parser("tfidf", help="TF-IDF word+char n-grams, one logistic regression per label")
    tfidf.add_argument("overrides", nargs="*", help="train.py-style overrides (dataset=jigsaw dataset.path=... "
                                                    "data.folds=5 data.fold=0); the run goes to outputs/baseline/runs/")
    tfidf.set_defaults(handler=_baseline_tfidf)


def _baseline_tfidf(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from modlab.baseline import tfidf

    run = tfidf.run(args.overrides)
    print(f"run dir: {run.path}")
    return 0


# --- `modlab export ...` / `modlab predict ...` ------------------------------------------------------------

def _add_export(parser) -> None:
    parser.add_argument("path", help="a training run dir or a .ckpt")
    parser.add_argument("--out", default=None, help="bundle dir to write (default: <run dir>/bundle-<precision>)")
    parser.add_argument("--precision", default="fp32", help="fp32 (CPU and GPU) | int8 (CPU) | fp16 (GPU)")
    parser.add_argument("--force", action="store_true",
                        help="write the bundle even if the parity check misses (the miss is recorded in modlab.json)")
    parser.set_defaults(handler=_export)


def _export(args) -> int:
    quiet_libraries()
    from modlab.export.pipeline import export

    out, parity = export(args.path, out=args.out, precision=args.precision, force=args.force)
    print(parity.line())
    print(f"wrote bundle {out} (model.onnx {(out / 'model.onnx').stat().st_size / 2**20:.1f} MiB, {args.precision}); "
          f"load it with modlab.load({str(out)!r}) or `modlab predict {out} --input ... --output ...`")
    return 0


def _add_predict(parser) -> None:
    parser.add_argument("path", help="a bundle from `modlab export`, a training run dir or a .ckpt")
    parser.add_argument("--input", required=True, help="CSV, JSONL or text file (one text per line); - for stdin")
    parser.add_argument("--output", required=True, help=".csv or .jsonl: id, prob_<label>, flag_<label> per row")
    parser.add_argument("--text-column", default=None,
                        help="column/field of the texts (default: comment_text, else text)")
    parser.add_argument("--id-column", default="id", help="column/field of the ids (default: id; else row numbers)")
    parser.add_argument("--input-format", default=None, help="csv | jsonl | text (default: by extension; stdin: text)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default=None, help="fp32 to force full precision (default: fastest)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the library's)")
    parser.set_defaults(handler=_predict)


def _predict(args) -> int:
    from modlab.export.bundle import is_bundle
    from modlab.predict import batch

    if not is_bundle(args.path):  # a bundle runs without torch, lightning or their log handlers
        quiet_libraries()
    batch.run(args.path, args.input, args.output, text_column=args.text_column, id_column=args.id_column,
              batch_size=args.batch_size, input_format=args.input_format, precision=args.precision,
              threads=args.threads)
    return 0


# --- `modlab serve ...` ------------------------------------------------------------------------------------

def _add_serve(parser) -> None:
    from modlab.serve.batching import SERVE_BATCH_SIZE, BatchSettings
    from modlab.serve.schemas import Limits

    limits, batching = Limits(), BatchSettings()
    parser.add_argument("paths", nargs="+", metavar="[NAME=]PATH",
                        help="bundles or run dirs; the name defaults to the directory name")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--api-key-env", default=None, metavar="VAR",
                        help="require `Authorization: Bearer <key>` on /v1 and /metrics, the key read from $VAR")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow browser pages from ORIGIN to call the API (repeatable; default: none)")
    parser.add_argument("--max-batch", type=int, default=batching.max_batch,
                        help=f"texts per micro-batch per model (default {batching.max_batch})")
    parser.add_argument("--batch-window-ms", type=float, default=batching.window_ms,
                        help=f"how long a request waits for others to batch with (default {batching.window_ms})")
    parser.add_argument("--no-batching", action="store_true", help="score every request on its own")
    parser.add_argument("--max-queue", type=int, default=batching.max_queue,
                        help=f"texts waiting per model before requests get 503 (default {batching.max_queue})")
    parser.add_argument("--max-inputs", type=int, default=limits.max_inputs,
                        help=f"texts per request (default {limits.max_inputs})")
    parser.add_argument("--max-chars", type=int, default=limits.max_chars,
                        help=f"characters per text (default {limits.max_chars})")
    parser.add_argument("--max-body-bytes", type=int, default=limits.max_body_bytes,
                        help=f"request body size (default {limits.max_body_bytes})")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per model (default: the cores shared equally among the models)")
    parser.add_argument("--batch-size", type=int, default=SERVE_BATCH_SIZE,
                        help=f"texts per padded model call inside a micro-batch (default {SERVE_BATCH_SIZE}: a "
                             f"micro-batch holds texts of any length, and small calls pad less)")
    parser.add_argument("--graceful-timeout", type=float, default=30.0,
                        help="seconds in-flight requests get to finish after SIGTERM (default 30)")
    parser.add_argument("--access-log", action="store_true", help="log every request line")
    parser.set_defaults(handler=_serve)


def _serve(args) -> int:
    from modlab.serve.app import ServeSettings
    from modlab.serve.batching import BatchSettings
    from modlab.serve.schemas import Limits
    from modlab.serve.server import api_key_from, serve

    for flag in ("max_batch", "max_queue", "max_inputs", "max_chars", "max_body_bytes", "batch_size"):
        if getattr(args, flag) < 1:
            raise ModlabError(f"--{flag.replace('_', '-')} {getattr(args, flag)} must be at least 1")
    if args.batch_window_ms < 0 or args.graceful_timeout < 0:
        raise ModlabError("--batch-window-ms and --graceful-timeout cannot be negative")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from modlab.export.bundle import is_bundle
    from modlab.serve.models import parse

    wanted = parse(args.paths)
    if not all(is_bundle(m.path) for m in wanted):  # bundles alone start without torch and lightning
        quiet_libraries()
    settings = ServeSettings(
        limits=Limits(max_body_bytes=args.max_body_bytes, max_inputs=args.max_inputs, max_chars=args.max_chars),
        batching=BatchSettings(enabled=not args.no_batching, max_batch=args.max_batch, window_ms=args.batch_window_ms,
                               max_queue=args.max_queue),
        api_key=api_key_from(args.api_key_env), cors_origins=tuple(args.cors_origin))
    serve(wanted, host=args.host, port=args.port, settings=settings, threads=args.threads,
          batch_size=args.batch_size, graceful_timeout=args.graceful_timeout, access_log=args.access_log)
    return 0


# Subcommand name -> (help, function that adds its arguments and sets `handler`).
SUBCOMMANDS = {
    "data": ("prepare and inspect datasets (data synth)", _add_data),
    "compare": ("compare runs side by side from their run dirs (no W&B needed)", _add_compare),
    "baseline": ("a TF-IDF + logistic regression run dir on the same splits (baseline tfidf [overrides])",
                 _add_baseline),
    "sync": ("upload every offline W&B run under outputs/ (wandb sync does not search a tree)", _add_sync),
    "export": ("export a run as a self-contained ONNX bundle (parity-checked)", _add_export),
    "predict": ("score a CSV/JSONL/text file with a bundle, run dir or .ckpt", _add_predict),
    "serve": ("an HTTP moderation API and a page comparing the models side by side", _add_serve),
}


USAGE = """modlab: train, sweep, compare and ship multi-label content-moderation classifiers.

Training and scoring run through Hydra entry points in the repo root:
  python train.py [overrides]            train one run (outputs/train/runs/<time>/)
  python train.py -m hparams_search=...  an Optuna sweep
  python eval.py ckpt_path=<run dir>     score a checkpoint on its run's held-out rows
The commands below work on data and on finished run dirs."""

EXAMPLES = """examples:
  modlab data synth --out synth.jsonl --size 5000     write synthetic data to inspect or train on
  modlab compare outputs/train/multiruns/<time>       a table (and compare.md/.png) of finished runs
  modlab compare <runs of A> <runs of B> --paired     A - B = d [lo, hi]: is A really better?
  modlab baseline tfidf dataset=jigsaw dataset.path=..  TF-IDF + logistic regression on a run's splits
  modlab sync outputs                                 upload every offline W&B run
  modlab export outputs/train/runs/<time> --precision int8    an ONNX bundle (model.onnx + modlab.json)
  modlab predict <bundle> --input comments.csv --output scores.csv   score a file, streamed
  modlab serve a=<bundle> b=<run dir>                 the API and a comparison page on http://127.0.0.1:8000/
run `modlab <command> --help` for a command's options."""


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="modlab", description=USAGE, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, title="commands", metavar="<command>")
    for name, (help_text, add_arguments) in SUBCOMMANDS.items():
        add_arguments(commands.add_parser(name, help=help_text))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ModlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
