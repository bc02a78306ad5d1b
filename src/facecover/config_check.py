"""Config validation with one line per problem, naming the key (`render.size: 'huge' is not of type
'integer'`), instead of a validator's dump of the whole schema."""

from __future__ import annotations

from pathlib import Path


def config_problems(config: dict, schema_path: str | Path) -> list[str]:
    """Problems of `config` against the JSON schema (YAML) at `schema_path`, one line each, as
    `<dotted.key>: <what is wrong>`; empty when the config is valid."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    lines = []
    for error in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        if error.validator == "additionalProperties":
            unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            known = ", ".join(sorted(error.schema.get("properties", {})))
            for name in unknown:
                where = f"{key}.{name}" if error.absolute_path else name
                lines.append(f"{where}: unknown key (known here: {known})")
            continue
        if error.validator == "required":
            lines.append(f"{key}: {error.message}")
            continue
        value = repr(error.instance)
        value = value if len(value) <= 60 else value[:57] + "..."
        lines.append(f"{key}: {value} is not allowed: {_reason(error)}")
    return lines


def _reason(error) -> str:
    """The rule the value broke, without repeating the value."""
    rule, expected = error.validator, error.validator_value
    if rule == "type":
        return f"must be of type {expected}"
    if rule == "enum":
        return "must be one of " + ", ".join(map(str, expected))
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        return f"must be {words[rule]} {expected}"
    if rule in ("minItems", "maxItems"):
        return f"needs {'at least' if rule == 'minItems' else 'at most'} {expected} items"
    return error.message
