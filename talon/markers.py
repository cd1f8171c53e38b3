"""Progress and artifact reports carried in a run's output.

A job that cannot reach its run file (it runs on another host, under Grid Engine or Slurm)
reports through its output instead: `talon progress`/`talon artifact add` print one marker line,
and whoever collects the run's log folds the markers into the run file. A marker is a fixed
prefix followed by one JSON object, so values with spaces or quotes survive unchanged.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterable, Iterator
from typing import Any

PREFIX = "::talon:: "


def format_marker(kind: str, payload: dict[str, Any]) -> str:
    """One marker line (without newline): kind is "progress" or "artifact"."""
    return PREFIX + json.dumps({kind: payload}, sort_keys=True, separators=(",", ":"))


def parse_markers(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (kind, payload) for every well-formed marker line; anything else is ignored."""
    for line in lines:
        if not line.startswith(PREFIX):
            continue
        try:
            obj = json.loads(line[len(PREFIX) :])
        except ValueError:
            continue
        if isinstance(obj, dict) and len(obj) == 1:
            ((kind, payload),) = obj.items()
            if kind in ("progress", "artifact") and isinstance(payload, dict):
                yield kind, payload


_PREFIX_BYTES = PREFIX.encode()


def markers_in_file(path: str | os.PathLike[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """`parse_markers` over a file read as text (UTF-8, errors replaced, universal newlines),
    without reading it line by line in Python: a job's log can be gigabytes, and the pass that
    collects its end reads it. Only the lines that start with the prefix are decoded: found by
    a byte search, at the start of the file or after a newline or carriage return, up to the
    next of either."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return
        data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        lines = []
        at = data.find(_PREFIX_BYTES)
        while at != -1:
            if at == 0 or data[at - 1] in b"\r\n":
                end = data.find(b"\n", at)
                end = len(data) if end == -1 else end
                cr = data.find(b"\r", at, end)  # (bounded: a log without \r is not rescanned)
                end = end if cr == -1 else cr
                lines.append(data[at:end].decode("utf-8", errors="replace"))
                at = data.find(_PREFIX_BYTES, end)
            else:
                at = data.find(_PREFIX_BYTES, at + 1)
        yield from parse_markers(lines)
    finally:
        data.close()
