"""How far along a run is, in words: reported percent or items, else elapsed against expected."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from talon.durations import format_duration
from talon.runs import Run, State


def expected_seconds(configured: float | None, past: Sequence[float]) -> float | None:
    """The job's `expected_duration`, else the median of its past successful runs."""
    if configured is not None:
        return configured
    return statistics.median(past) if past else None


def effective(run: Run, now: datetime, expected_s: float | None) -> dict[str, Any] | None:
    """The run's progress: what it reported, or a duration-based estimate while it runs."""
    if run.progress is not None:
        return dict(run.progress)
    if run.state is State.RUNNING and run.started and expected_s:
        elapsed = max(0.0, (now - datetime.fromisoformat(run.started)).total_seconds())
        return {
            "kind": "duration",
            "elapsed_s": round(elapsed, 1),
            "expected_s": round(expected_s, 1),
        }
    return None


def describe(progress: dict[str, Any] | None) -> str:
    if not progress:
        return ""
    kind = progress.get("kind")
    if kind == "percent":
        return f"{float(progress.get('percent', 0)):.0f}%"
    if kind == "items":
        return f"{progress.get('done', 0)}/{progress.get('total', 0)} items"
    if kind == "duration":
        elapsed, expected = float(progress["elapsed_s"]), float(progress["expected_s"])
        pct = min(99.0, 100 * elapsed / expected) if expected else 0.0
        left = expected - elapsed
        tail = f"{format_duration(left)} left" if left > 0 else f"{format_duration(-left)} over"
        return f"~{pct:.0f}% ({tail})"
    return ""
