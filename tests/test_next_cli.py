"""`talon next` through the command line across DST changes: instants on stdout, one a line;
what a DST rule did, on stderr and in --json."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Talon, write_repo


def repo(tmp_path: Path, trigger: str, tz: str, extra: str = "") -> Path:
    job = f"jobs:\n  j:\n    command: 'true'\n    timezone: {tz}\n    trigger: '{trigger}'\n{extra}"
    return write_repo(tmp_path, {"schedule/a.yaml": job})


def test_fall_back_fixed_time_fires_once(tmp_path: Path, talon: Talon) -> None:
    root = repo(tmp_path, "30 1 * * *", "Europe/London")
    result = talon("-C", str(root), "next", "j", "--count", "3", "--now", "2026-10-24T12:00:00Z")
    assert result.code == 0
    assert result.lines == [
        "2026-10-25T01:30:00+01:00",
        "2026-10-26T01:30:00+00:00",
        "2026-10-27T01:30:00+00:00",
    ]
    assert "occurs twice" in result.err and "first occurrence only" in result.err


def test_spring_gap_is_moved_and_said(tmp_path: Path, talon: Talon) -> None:
    root = repo(tmp_path, "30 2 * * *", "America/New_York")
    result = talon(
        "-C", str(root), "next", "j", "--count", "2", "--now", "2026-03-07T12:00:00Z", "--json"
    )
    fires = json.loads(result.out)
    assert [f["at"] for f in fires] == ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
    assert fires[0]["note"].startswith("moved from 02:30")
    assert fires[1]["note"] is None


def test_stepped_hour_fires_in_both_occurrences(tmp_path: Path, talon: Talon) -> None:
    root = repo(tmp_path, "0 */1 * * *", "Europe/London")
    result = talon("-C", str(root), "next", "j", "--count", "3", "--now", "2026-10-24T23:30:00Z")
    assert result.lines == [
        "2026-10-25T01:00:00+01:00",
        "2026-10-25T01:00:00+00:00",
        "2026-10-25T02:00:00+00:00",
    ]


def test_dst_override_skips_the_gap(tmp_path: Path, talon: Talon) -> None:
    root = repo(tmp_path, "30 1 * * *", "Europe/London", "    dst: {gap: skip}\n")
    result = talon("-C", str(root), "next", "j", "--count", "2", "--now", "2026-03-28T12:00:00Z")
    assert result.lines == ["2026-03-30T01:30:00+01:00", "2026-03-31T01:30:00+01:00"]


def test_external_job_has_no_next(tmp_path: Path, talon: Talon) -> None:
    root = repo(tmp_path, "external", "UTC")
    result = talon("-C", str(root), "next", "j")
    assert result.code == 0 and result.lines == []
    assert "no timed trigger" in result.err
