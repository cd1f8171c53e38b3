"""Progress and artifact reports carried in a run's output.

A job that cannot reach its run file (it runs on another host, under Grid Engine or Slurm)
reports through its output instead: `talon progress`/`talon artifact add` print one marker line,
and whoever collects the run's log folds the markers into the run file. A marker is a fixed
prefix followed by one JSON object, so values with spaces or quotes survive unchanged.
"""

from __future__ import annotations

import json
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
