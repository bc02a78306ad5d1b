"""Stage commands shared by the benchmarks that replay workflow stages on their own subjects."""

from __future__ import annotations

import json

from facecover.cli import main as facecover


def run(*argv) -> None:
    """`facecover <argv>` in this process (arguments are str()-ed); stops the benchmark if the stage fails."""
    if facecover([str(a) for a in argv]) != 0:
        raise SystemExit(f"facecover {argv[0]} failed (see above)")


def settings(config: dict, block: str, *skip: str) -> str:
    """A config block as a stage's --settings JSON (what workflow/rules/common.smk's settings_json passes)."""
    return json.dumps({k: v for k, v in config[block].items() if k not in skip}, sort_keys=True)
