"""`modlab` subcommands, and the one-line error wrapper the Hydra entry points share."""

from __future__ import annotations

import functools
import os
import sys

from modlab.errors import ModlabError


def quiet_libraries() -> None:
    """Progress bars from transformers' loading code only clutter training logs."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def one_line_errors(fn):
    """A ModlabError in a single run exits 2 with one line; in a multirun it propagates to the sweeper."""

    @functools.wraps(fn)
    def wrapper(cfg):
        quiet_libraries()
        try:
            return fn(cfg)
        except ModlabError as err:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="modlab", description=__doc__)
    parser.add_subparsers(dest="command", required=True)
    args = parser.parse_args(argv)
    return {}.get(args.command, lambda _: 2)(args)
