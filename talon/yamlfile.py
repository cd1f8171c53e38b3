"""YAML loading: plain data plus the source position of every key and item.

ruamel.yaml enters Talon here and only here. Files are parsed as YAML 1.2 (so `no`, `on` and
`09:00` stay strings, avoiding the YAML 1.1 traps), timestamps are kept as the strings the user
wrote, duplicate keys are noted with both places (the first value kept, so the rest of the file
is still checked), and size and alias expansion are bounded so a hostile or mistaken file
cannot exhaust memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BYTES = 8 * 1024 * 1024
MAX_NODES = 2_000_000  # bounds alias expansion ("billion laughs")

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlError(Exception):
    """A file that cannot be loaded; line and col are 1-based (0 when unknown)."""

    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.line}:{self.col}: {self.message}"


@dataclass(frozen=True)
class Loaded:
    """Plain data (dict, list, str, int, float, bool, None) and where each part came from."""

    data: Any
    # (line, col), 1-based, of each key (for mappings) and item (for sequences).
    key_pos: dict[KeyPath, tuple[int, int]]
    # (line, col), 1-based, of each value.
    value_pos: dict[KeyPath, tuple[int, int]]
    lines: tuple[str, ...] = ()
    # Keys written twice in one mapping: (key, (line, col) of the repeat, of the first).
    # The first one's value is kept, so that the rest of the file can still be checked.
    duplicates: tuple[tuple[str, tuple[int, int], tuple[int, int]], ...] = ()

    def position(self, path: KeyPath, *, value: bool = False) -> tuple[int, int]:
        """Where `path` is written; falls back to the nearest enclosing part that has a position."""
        table = self.value_pos if value else self.key_pos
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if p in self.key_pos:
                return self.key_pos[p]
            p = p[:-1]
        return (1, 1)


def _make_yaml() -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import RoundTripConstructor

    class _Constructor(RoundTripConstructor):
        """Keeps timestamps as written: a date is the user's text, not a datetime; notes
        duplicate keys instead of stopping at the first."""

        duplicates: list[tuple[str, tuple[int, int], tuple[int, int]]]

        def check_mapping_key(
            self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any
        ) -> bool:
            if key not in mapping:
                return True
            if not hasattr(self, "duplicates"):
                self.duplicates = []
            try:
                fl, fc = mapping.lc.key(key)
                first = (fl + 1, fc + 1)
            except (KeyError, TypeError, AttributeError):
                first = (node.start_mark.line + 1, node.start_mark.column + 1)
            mark = key_node.start_mark
            self.duplicates.append((str(key), (mark.line + 1, mark.column + 1), first))
            return False

    def _timestamp_as_text(constructor: Any, node: Any) -> Any:
        return constructor.construct_scalar(node)

    # add_constructor on the subclass copies the table, so ruamel's global loader is untouched.
    _Constructor.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    return yaml


def load_text(text: str) -> Loaded:
    """Parse one YAML document; raise YamlError with a position on any problem."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise YamlError(1, 1, f"file is larger than the {MAX_BYTES // (1024 * 1024)} MiB limit")
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = _make_yaml()
    try:
        raw = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        what = " ".join(s for s in (exc.context, exc.problem) if s)
        raise YamlError(line, col, f"invalid YAML: {what}") from None
    except YAMLError as exc:
        raise YamlError(1, 1, f"invalid YAML: {exc}") from None
    loaded = _to_plain(raw)
    duplicates = tuple(getattr(yaml.constructor, "duplicates", ()))
    return Loaded(
        loaded.data, loaded.key_pos, loaded.value_pos, tuple(text.splitlines()), duplicates
    )


def load_file(path: Path) -> Loaded:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise YamlError(0, 0, f"cannot read: {exc.strerror}") from None
    if size > MAX_BYTES:
        mib = size / (1024 * 1024)
        raise YamlError(1, 1, f"file is {mib:.1f} MiB, larger than the {MAX_BYTES >> 20} MiB limit")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(1, 1, f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except OSError as exc:
        raise YamlError(0, 0, f"cannot read: {exc.strerror}") from None
    return load_text(text)


def _key_text(key: Any) -> str:
    """A key YAML reads as another type, as the file spells it: a job named `true:` or
    `null:` is `true` or `null`, not Python's `True` or `None`."""
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _to_plain(raw: Any) -> Loaded:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    key_pos: dict[KeyPath, tuple[int, int]] = {}
    value_pos: dict[KeyPath, tuple[int, int]] = {}
    budget = [MAX_NODES]

    def convert(node: Any, path: KeyPath) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            line, col = key_pos.get(path, (1, 1))
            raise YamlError(line, col, "document expands to too many nodes (alias bomb?)")
        if isinstance(node, CommentedMap):
            out: dict[str, Any] = {}
            for k, v in node.items():
                key = k if isinstance(k, str) else _key_text(k)
                child = (*path, key)
                try:
                    kl, kc = node.lc.key(k)
                    key_pos[child] = (kl + 1, kc + 1)
                    vl, vc = node.lc.value(k)
                    value_pos[child] = (vl + 1, vc + 1)
                except (KeyError, TypeError, AttributeError):
                    pass
                out[key] = convert(v, child)
            return out
        if isinstance(node, CommentedSeq):
            items: list[Any] = []
            for i, v in enumerate(node):
                child = (*path, i)
                try:
                    il, ic = node.lc.item(i)
                    key_pos[child] = value_pos[child] = (il + 1, ic + 1)
                except (KeyError, TypeError, AttributeError):
                    pass
                items.append(convert(v, child))
            return items
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, str):
            return str(node)
        return str(node)

    data = convert(raw, ())
    return Loaded(data, key_pos, value_pos)
