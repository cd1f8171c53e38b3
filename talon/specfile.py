"""The files of a repository as `load_spec` reads them: each loaded, checked against its schema
and kept with where each of its parts is written, so that a problem found later names its
place; and the readers that take a value the schema has rejected as absent."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from talon import schema
from talon.problems import Problem
from talon.yamlfile import KeyPath, Loaded, YamlError, load_file

# A value of the wrong type has been reported by the schema at its own place; the builders below
# read it as absent instead of tripping over it, so one mistake is one located problem, never a
# traceback, and a mistake in talon.yaml is not reported again at every job it reaches.


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@overload
def whole(value: Any, default: int) -> int: ...
@overload
def whole(value: Any, default: None = None) -> int | None: ...
def whole(value: Any, default: int | None = None) -> int | None:
    # bool is an int to Python, not to the schema: `retries: yes` is not 1.
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@dataclass
class File:
    rel: str
    loaded: Loaded

    def at(self, path: KeyPath, *, value: bool = False) -> tuple[int, int]:
        return self.loaded.position(path, value=value)

    def problem(self, path: KeyPath, message: str, *, value: bool = False) -> Problem:
        line, col = self.at(path, value=value)
        return Problem(self.rel, line, col, message)


@dataclass
class Loader:
    root: Path
    problems: list[Problem] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def load(self, path: Path, schema_name: str) -> File | None:
        rel = self.rel(path)
        try:
            loaded = load_file(path)
        except YamlError as exc:
            self.problems.append(Problem(rel, exc.line, exc.col, exc.message))
            return None
        for key, (line, col), (fline, fcol) in loaded.duplicates:
            self.problems.append(
                Problem(rel, line, col, f'duplicate key "{key}", first at {rel}:{fline}:{fcol}')
            )
            self.problems.append(
                Problem(rel, fline, fcol, f'duplicate key "{key}", again at {rel}:{line}:{col}')
            )
        if loaded.data is None:
            loaded = Loaded({}, {}, {}, loaded.lines)
        found = schema.check(schema_name, loaded, rel)
        self.problems.extend(found)
        f = File(rel, loaded)
        return None if found and not isinstance(loaded.data, dict) else f


def valid_tz(name: str) -> bool:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return False
    return True


def unknown(kind: str, name: str, known: Mapping[str, Any] | list[str]) -> str:
    hint = difflib.get_close_matches(name, list(known), n=1)
    did = f" (did you mean '{hint[0]}'?)" if hint else ""
    return f"unknown {kind} '{name}'{did}"
