"""The `refcfa` command line: thin — parse, load the config, call the library.

Each subcommand lives in `refcfa/commands/<name>.py` with `add_arguments(parser)` and
`run(args) -> int`; those modules import torch only inside `run`, so `refcfa --help` is fast.
User errors (`RefcfaError`, `FileNotFoundError`, `ValueError`, `TypeError`) print one line
`error: ...` and exit with status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from refcfa import __version__

# name -> (module, help); a missing module is skipped so the CLI works while parts are optional.
COMMANDS: dict[str, tuple[str, str]] = {
    "make-synthetic": ("refcfa.commands.data", "write the synthetic domain-shift benchmark"),
    "data": ("refcfa.commands.data", "inspect dataset roots"),
    "train": ("refcfa.commands.train", "train a score network (stage S1 or T1)"),
    "extract": ("refcfa.commands.extract", "fill the REF trajectory cache"),
    "analyze": ("refcfa.commands.analyze", "the seed's analyze_net: S2, T2 and analysis figures"),
    "pipeline": ("refcfa.commands.pipeline", "run S1, T1, S2, T2 and the evaluation"),
    "demo": ("refcfa.commands.pipeline", "generate the demo data and run the pipeline on it"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refcfa", description="REF-CFA: cross-domain anomaly detection")
    parser.add_argument("--version", action="version", version=f"refcfa {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        module.add_arguments(name, p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from refcfa.errors import RefcfaError

    try:
        return int(args._run(args) or 0)
    except (RefcfaError, FileNotFoundError, ValueError, TypeError, PermissionError) as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
