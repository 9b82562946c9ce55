"""`modlab` subcommands, and the one-line error wrapper the Hydra entry points share."""

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
