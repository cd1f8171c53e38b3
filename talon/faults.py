"""Fault injection for crash-safety tests: `TALON_CRASH_AT=point[:n]` kills the process with
SIGKILL the n-th time (default first) it reaches `point`. Unset, it costs one dict lookup."""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("TALON_CRASH_AT", "")
_POINT, _, _NTH = _SPEC.partition(":")
_seen = [0]

POINTS = (
    "create.after_journal",  # a run is in the journal, its file not yet written
    "create.after_file",  # the run file exists, the pass has not checked it
    "dispatch.after_intent",  # intent recorded (running, no handle), not started (others
    # marked before it in a batch of local starts may be: they begin as they are marked)
    "dispatch.after_submit",  # the process started, its handle not recorded
    "collect.after_dependants",  # dependants created, the upstream not yet marked succeeded
    "pass.before_ends",  # dependants dispatched or written, the upstream's end not yet written
    "pass.before_book",  # every decision written, the index not yet saved
)


def crash_point(name: str) -> None:
    if name != _POINT:
        return
    _seen[0] += 1
    if _seen[0] >= int(_NTH or 1):
        os.kill(os.getpid(), signal.SIGKILL)
