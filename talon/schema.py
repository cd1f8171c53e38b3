"""JSON Schema checks, with every error mapped to the line of the offending key or value.

jsonschema enters Talon here, lazily: it costs ~100 ms to import, which `talon --help` and a
no-op reconcile must not pay.
"""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from talon.problems import Problem
from talon.yamlfile import Loaded

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A schema by its stem ("schedule" for schemas/schedule.schema.json)."""
    text = (resources.files("talon") / "schemas" / f"{name}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(
        _checked_schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@cache
def _checked_schema(name: str) -> dict[str, Any]:
    """The schema as Talon checks against it (see _python_anchors)."""
    schema: dict[str, Any] = _python_anchors(load_schema(name))
    return schema


def _python_anchors(node: Any) -> Any:
    """The schema with each pattern's closing `$` made `\\Z`. The patterns are ECMA-262, where
    `$` ends the text; Python's `re`, which jsonschema uses, also lets `$` match before a final
    newline, so `"db\\n"` passed a name pattern (and a newline in a name became a line break
    in an exported script). The files keep `$`, for editors."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                out[key] = _anchored(value)
            elif key == "patternProperties" and isinstance(value, dict):
                out[key] = {_anchored(k): _python_anchors(v) for k, v in value.items()}
            else:
                out[key] = _python_anchors(value)
        return out
    if isinstance(node, list):
        return [_python_anchors(v) for v in node]
    return node


def _anchored(pattern: str) -> str:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + "\\Z"
    return pattern


def accepts(name: str, definition: str, value: Any) -> bool:
    """Whether `value` is valid as `$defs/<definition>` of schema `name`: lets a semantic check
    stay quiet about a part the schema has reported already."""
    validator = _PART_VALIDATORS.get((name, definition))
    if validator is None:
        from jsonschema import Draft202012Validator

        schema = _checked_schema(name)
        part = {"$defs": schema.get("$defs", {}), "$ref": f"#/$defs/{definition}"}
        validator = Draft202012Validator(part, format_checker=Draft202012Validator.FORMAT_CHECKER)
        _PART_VALIDATORS[(name, definition)] = validator
    return bool(validator.is_valid(value))


_PART_VALIDATORS: dict[tuple[str, str], Any] = {}


def check(name: str, loaded: Loaded, path: str) -> list[Problem]:
    """Every schema problem of a loaded file, each located."""
    from jsonschema.exceptions import best_match

    problems: list[tuple[int, Problem]] = []
    for found in _validator(name).iter_errors(loaded.data):
        # anyOf/oneOf: report the alternative that came closest, not all of them.
        error = best_match([found]) if found.context else found
        rank = 1 if error.validator == "type" else 0
        problems.extend((rank, p) for p in _locate(error, loaded, path))
    # One problem, one line. Several subschemas (allOf/if-then) may reject the same unknown
    # key: say it once, with the narrowest list of known keys. A value both of the wrong type
    # and not among the allowed ones (`catchup: 5`): say what is allowed.
    best: dict[tuple[int, int, str], tuple[int, Problem]] = {}
    for rank, p in problems:
        head = p.message.split(";", 1)[0]
        # (The value's path too: parts merged in from elsewhere (`<<: *base`) share a place.)
        where = head if "unknown key" in head else head.split(": ", 1)[0]
        key = (p.line, p.col, where)
        known = best.get(key)
        if known is None or (rank, len(p.message)) < (known[0], len(known[1].message)):
            best[key] = (rank, p)
    return sorted(p for _, p in best.values())


def check_data(name: str, data: Any) -> list[str]:
    """Schema problems of in-memory data (run files), as `where: message` strings."""
    out = []
    for error in _validator(name).iter_errors(data):
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        out.append(f"{where}: {error.message}")
    return out


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)


def _locate(error: ValidationError, loaded: Loaded, path: str) -> list[Problem]:
    at = tuple(error.absolute_path)
    where = _dotted(at)
    prefix = f"{where}: " if where else ""
    sub = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(sub.get("properties", {}))
        patterns = sub.get("patternProperties", {})

        extras = [
            k
            for k in error.instance
            if k not in allowed and not any(re.search(p, k) for p in patterns)
        ]
        out = []
        for key in extras:
            line, col = loaded.position((*at, key))
            hint = difflib.get_close_matches(key, sorted(allowed), n=1)
            did = f" (did you mean '{hint[0]}'?)" if hint else ""
            known = ", ".join(sorted(allowed))
            out.append(
                Problem(path, line, col, f"{prefix}unknown key '{key}'{did}; known: {known}")
            )
        if out:
            return out
    if error.validator == "propertyNames" or "propertyNames" in error.schema_path:
        # The error is about a key, not a value: point at the key itself.
        key = str(error.instance)
        line, col = loaded.position((*at, key))
        return [Problem(path, line, col, f"{prefix}{_names_message(key, error)}")]
    line, col = loaded.position(at, value=True)
    return [Problem(path, line, col, f"{prefix}{_message(error)}")]


def _names_message(key: str, error: ValidationError) -> str:
    sub = error.schema if isinstance(error.schema, dict) else {}
    why = sub.get("patternErrorMessage") or (
        f"names must match {sub['pattern']}" if "pattern" in sub else error.message
    )
    return f"name {key!r} is not allowed: {why}"  # (repr: a newline in it stays on the line)


def _message(error: ValidationError) -> str:
    if error.validator == "enum":
        allowed: Any = error.validator_value
        options = ", ".join(json.dumps(o) for o in allowed)
        return f"{json.dumps(error.instance)} is not one of {options}"
    if error.validator == "required":
        return str(error.message).replace("is a required property", "is required")
    if error.validator == "type":
        return f"{json.dumps(error.instance)} should be of type {error.validator_value}"
    if isinstance(error.schema, dict) and isinstance(error.schema.get("errorMessage"), str):
        return f"{json.dumps(error.instance)}: {error.schema['errorMessage']}"
    if error.validator == "pattern":
        sub = error.schema if isinstance(error.schema, dict) else {}
        desc = sub.get("patternErrorMessage") or sub.get("description")
        hint = f" ({desc})" if desc else ""
        return f"{json.dumps(error.instance)} is not valid{hint}"
    return str(error.message)
