"""`facecover <stage>`: one subcommand per workflow stage (what each Snakemake rule runs).

This module only dispatches: the subcommands live in `facecover.commands.<group>`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import FacecoverError
from .commands import GROUPS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facecover", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        importlib.import_module(f"facecover.commands.{group}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except FacecoverError as exc:
        print(f"facecover {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
