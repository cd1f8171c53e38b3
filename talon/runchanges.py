"""Changes to a run, as functions of the run a file holds: applied under the job's lock to
what the file says when the write happens, so a concurrent change (a cancel) is never lost."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from talon.executors.base import Handle
from talon.runs import Run, State


def replay(changes: Sequence[Callable[[Run], Run | None]]) -> Callable[[Run], Run | None]:
    """One change made of several, applied in turn to the file's current run."""

    def change(current: Run) -> Run | None:
        out: Run | None = None
        for step in changes:
            out = step(out or current) or out
        return out

    return change


def with_handle(handle: Handle) -> Callable[[Run], Run | None]:
    def change(run: Run) -> Run | None:
        return run.but(executor={**(run.executor or {}), "handle": handle})

    return change


def handle_of(known: Run) -> Callable[[Run], Run | None]:
    """Give the file the handle of `known`, while it still holds the same intent."""

    def change(current: Run) -> Run | None:
        if current.state is not State.RUNNING or current.dispatch != known.dispatch:
            return None
        if (current.executor or {}).get("handle") is not None:
            return None
        return current.but(executor=known.executor)

    return change
