"""Secrets ("auth data sources"): values read at dispatch, given only to the job's environment.

A value never appears in a run file, a log Talon writes or an error message: errors name the
secret and its source, never its content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from talon.model import SecretSource


class SecretError(Exception):
    """A secret that cannot be read; the message names the source, never a value."""


def resolve(
    names: Sequence[str], sources: Mapping[str, SecretSource], environ: Mapping[str, str]
) -> dict[str, str]:
    """`secrets: [db]` → {"DB": value}. Raises SecretError naming what is missing."""
    out: dict[str, str] = {}
    for name in names:
        src = sources.get(name)
        if src is None:
            raise SecretError(f"secret '{name}' is not defined in talon.yaml")
        var = name.upper().replace("-", "_").replace(".", "_")
        if src.env is not None:
            if src.env not in environ:
                raise SecretError(f"secret '{name}': environment variable {src.env} is not set")
            out[var] = environ[src.env]
        elif src.file is not None:
            try:
                out[var] = Path(src.file).read_text("utf-8").rstrip("\n")
            except OSError as exc:
                raise SecretError(
                    f"secret '{name}': cannot read {src.file}: {exc.strerror}"
                ) from None
            except UnicodeDecodeError as exc:  # (the message quotes no byte of the value)
                raise SecretError(
                    f"secret '{name}': {src.file} is not UTF-8 text (byte {exc.start})"
                ) from None
        else:
            raise SecretError(f"secret '{name}' has neither env nor file")
    return out
