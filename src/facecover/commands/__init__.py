"""The `facecover` subcommands, one module per stage group (as in workflow/rules/*.smk).

Each module has `register(sub)`, which adds its subcommands to the argparse
sub-parsers; a subcommand's function imports what it needs when it runs, so
`facecover <stage>` pays only for its own stage's imports.
"""

from __future__ import annotations

from .. import FacecoverError

GROUPS = ("data", "scars", "encoder", "learn", "infer", "covers", "report", "mark")


def load_space(path: str) -> dict:
    """The face space arrays (template, landmarks, regions, shape modes) from `results/model/face_space.npz`."""
    from ..files import load_npz

    return load_npz(path)


def settings_from_json(cls, text: str | None):
    """A settings dataclass from a JSON object of config values (lists become tuples)."""
    import dataclasses
    import json

    if not text:
        return cls()
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FacecoverError(f"--settings is not valid JSON: {exc}") from None
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise FacecoverError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
