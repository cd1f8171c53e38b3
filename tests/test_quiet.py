"""The no-op shortcut holds only while nothing could happen."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from talon.quiet import is_quiet
from tests.conftest import Talon, write_repo

JOB = "jobs:\n  j:\n    command: 'true'\n    trigger: '0 6 * * *'\n  e:\n    command: 'true'\n    trigger: external\n"


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_quiet_until_something_can_happen(tmp_path: Path, talon: Talon) -> None:
    root = write_repo(tmp_path, {"schedule/a.yaml": JOB})
    assert not is_quiet(root, ts("2026-11-27T01:00:00+00:00")), "no pass yet"
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T01:00:00Z")
    assert is_quiet(root, ts("2026-11-27T05:59:59+00:00"))
    assert not is_quiet(root, ts("2026-11-27T06:00:00+00:00")), "a trigger is due"
    assert not is_quiet(root, ts("2026-11-27T00:59:00+00:00")), "the clock went back"
    # A quiet reconcile says nothing and changes nothing.
    book = root / "state/.talon"
    before = {p.name: p.stat().st_mtime_ns for p in book.iterdir()}
    result = talon("-C", str(root), "reconcile", "--now", "2026-11-27T03:00:00Z")
    assert (result.code, result.out, result.err) == (0, "", "")
    assert {p.name: p.stat().st_mtime_ns for p in book.iterdir()} == before
    # Someone creates a run: the journal is not empty.
    talon("-C", str(root), "trigger", "e", "--now", "2026-11-27T03:00:00Z")
    assert not is_quiet(root, ts("2026-11-27T03:00:01+00:00"))
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T03:00:02Z")
    assert is_quiet(root, ts("2026-11-27T03:00:03+00:00"))
    # Someone edits the schedule.
    sched = root / "schedule/a.yaml"
    sched.write_text(sched.read_text() + "  k:\n    command: 'true'\n    trigger: '* * * * *'\n")
    os.utime(sched, ns=(1, 1))
    assert not is_quiet(root, ts("2026-11-27T03:00:04+00:00"))
    result = talon("-C", str(root), "reconcile", "--now", "2026-11-27T03:01:30Z")
    assert result.code == 0
    assert not is_quiet(root, ts("2026-11-27T03:02:00+00:00")), "k is due every minute"


def test_open_run_is_never_quiet(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n  up:\n    command: 'true'\n    trigger: external\n  down:\n    command: 'true'\n    trigger: external\n    constraints: {after: [up]}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "trigger", "down", "--now", "2026-11-27T03:00:00Z")
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T03:00:01Z")
    assert not is_quiet(root, ts("2026-11-27T03:10:00+00:00")), "a blocked run is open"
