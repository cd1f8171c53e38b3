"""End to end through the command line with `--now`, with real detached processes."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Talon, write_repo


@pytest.fixture(autouse=True)
def talon_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs call `talon progress`: the venv's talon must be on their PATH."""
    bindir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")


def runs(root: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((root / "state").glob("*/*/*.json")):
        data = json.loads(path.read_text())
        out[data["id"]] = data
    return out


def states(root: Path) -> dict[str, str]:
    return {k: str(v["state"]) for k, v in runs(root).items()}


CHAIN = """
jobs:
  a:
    command: echo a >> "$TALON_REPO/order"
    trigger: "0 6 * * *"
  b:
    command: echo b >> "$TALON_REPO/order"
    trigger: "0 6 * * *"
    constraints: {after: [a]}
  c:
    command: echo c >> "$TALON_REPO/order"
    trigger: {after: b}
"""


def test_chain_in_one_period(tmp_path: Path, talon: Talon) -> None:
    root = write_repo(tmp_path, {"schedule/chain.yaml": CHAIN})
    assert talon("-C", str(root), "reconcile", "--now", "2026-11-27T00:00:00Z").code == 0
    result = talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T06:00:30Z")
    assert result.code == 0, result.err
    assert (root / "order").read_text().split() == ["a", "b", "c"]
    assert states(root) == {
        "a@20261127T060000Z": "succeeded",
        "b@20261127T060000Z": "succeeded",
        "c@20261127T060000Z.after.b": "succeeded",
    }
    b = runs(root)["b@20261127T060000Z"]
    history = [h["state"] for h in b["history"]]
    assert history[0] == "blocked" and history[-1] == "succeeded"
    assert "running" in history


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("latest", ["job@20261130T063000Z"]),
        ("all", ["job@20261128T063000Z", "job@20261129T063000Z", "job@20261130T063000Z"]),
        ("none", []),
    ],
)
def test_catchup_after_three_days_down(
    tmp_path: Path, talon: Talon, policy: str, expected: list[str]
) -> None:
    job = f"jobs:\n  job:\n    command: 'true'\n    trigger: '30 6 * * *'\n    catchup: {policy}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": job})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T12:00:00Z")
    result = talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-30T12:00:00Z")
    assert result.code == 0, result.err
    assert sorted(runs(root)) == expected
    assert all(s == "succeeded" for s in states(root).values())
    if policy == "all":
        # Each run belongs to the period of its own trigger.
        assert sorted(p.name for p in (root / "state").iterdir() if not p.name.startswith(".")) == [
            "2026-11-28",
            "2026-11-29",
            "2026-11-30",
        ]


def test_on_time_fire_is_not_missed_with_catchup_none(tmp_path: Path, talon: Talon) -> None:
    job = "jobs:\n  job:\n    command: 'true'\n    trigger: '30 6 * * *'\n    catchup: none\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": job})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T06:00:00Z")
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T06:31:00Z")
    assert states(root) == {"job@20261127T063000Z": "succeeded"}


def test_retries_then_upstream_failure_propagates(tmp_path: Path, talon: Talon) -> None:
    jobs = """
jobs:
  flaky:
    command: exit 3
    trigger: "0 6 * * *"
    retries: 2
  after-flaky:
    command: 'true'
    trigger: "0 6 * * *"
    constraints: {after: [flaky]}
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T00:00:00Z")
    result = talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T06:00:10Z")
    assert result.code == 1, "with --wait, a failed run makes the exit status 1"
    got = runs(root)
    flaky = sorted(k for k in got if k.startswith("flaky@"))
    assert flaky == [
        "flaky@20261127T060000Z",
        "flaky@20261127T060000Z.r2",
        "flaky@20261127T060000Z.r3",
    ]
    assert [got[k]["attempt"] for k in flaky] == [1, 2, 3]
    assert all(got[k]["state"] == "failed" and got[k]["exit_code"] == 3 for k in flaky)
    assert got["flaky@20261127T060000Z"]["reason"] == "exited with status 3"
    down = got["after-flaky@20261127T060000Z"]
    assert down["state"] == "failed"
    assert down["reason"] == "upstream flaky failed in 2026-11-27 (flaky@20261127T060000Z.r3)"


def test_cancel_stops_a_running_job(tmp_path: Path, talon: Talon) -> None:
    jobs = """
jobs:
  slow:
    command: echo $$ > "$TALON_REPO/pid"; exec sleep 60
    trigger: external
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    run_id = talon("-C", str(root), "trigger", "slow").out.strip()
    talon("-C", str(root), "reconcile")
    deadline = time.monotonic() + 10
    pid_file = root / "pid"
    while time.monotonic() < deadline and not (
        pid_file.exists() and pid_file.read_text().endswith("\n")
    ):
        time.sleep(0.05)
    pid = int((root / "pid").read_text())
    os.kill(pid, 0)  # it runs
    result = talon("-C", str(root), "cancel", run_id)
    assert result.code == 0, result.err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the cancelled job's process is still alive")
    talon("-C", str(root), "reconcile")
    run = runs(root)[run_id]
    assert run["state"] == "skipped"
    assert run["reason"] == "cancelled by user"
    assert talon("-C", str(root), "cancel", run_id).code == 1


def test_progress_and_artifacts_reported_by_the_job(tmp_path: Path, talon: Talon) -> None:
    jobs = """
jobs:
  report:
    command: >-
      talon progress --percent 40 &&
      talon progress --item fileA=succeeded --item fileB=running --total 12 &&
      talon artifact add https://example.test/r/${period.key}.pdf --name report
    trigger: external
    expected_duration: 10m
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    run_id = talon(
        "-C", str(root), "trigger", "report", "--now", "2026-11-27T08:00:00Z"
    ).out.strip()
    result = talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T08:00:05Z")
    assert result.code == 0, result.err + result.out
    run = runs(root)[run_id]
    assert run["state"] == "succeeded", talon("-C", str(root), "log", run_id).out
    assert run["progress"] == {
        "kind": "items",
        "items": {"fileA": "succeeded", "fileB": "running"},
        "done": 1,
        "total": 12,
    }
    # Its file existed before the start: the handle, kept back by `--wait` (passes._defer),
    # is written even though the job's reports changed the file meanwhile.
    assert isinstance(run["executor"]["handle"]["pid"], int), run["executor"]
    artifacts = run["artifacts"]
    assert isinstance(artifacts, list) and len(artifacts) == 1
    assert artifacts[0]["url"] == "https://example.test/r/2026-11-27.pdf"
    assert artifacts[0]["name"] == "report"
    status = talon("-C", str(root), "status", "--now", "2026-11-27T09:00:00Z")
    assert "1/12 items" in status.out


def test_parameter_arrives_literally(tmp_path: Path, talon: Talon) -> None:
    jobs = """
jobs:
  echo:
    command: printf '%s\\n' ${params.p} > "$TALON_REPO/out"
    trigger: external
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    (root / "work").mkdir()
    run_id = talon("-C", str(root), "trigger", "echo", "--param", "p=x; touch pwned").out.strip()
    assert talon("-C", str(root), "reconcile", "--wait").code == 0
    assert (root / "out").read_text() == "x; touch pwned\n"
    assert not (root / "pwned").exists() and not (root / "work" / "pwned").exists()
    assert runs(root)[run_id]["params"] == {"p": "x; touch pwned"}


def test_secret_reaches_only_the_environment(
    tmp_path: Path, talon: Talon, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = "timezone: UTC\nsecrets:\n  db: {env: TEST_DB_PASSWORD}\n"
    jobs = (
        "jobs:\n  s:\n"
        '    command: printf %s "$DB" | sha256sum > "$TALON_REPO/digest"\n'
        "    trigger: external\n    secrets: [db]\n"
    )
    root = write_repo(tmp_path, {"talon.yaml": config, "schedule/a.yaml": jobs})
    monkeypatch.setenv("TEST_DB_PASSWORD", "hunter2-secret")
    talon("-C", str(root), "trigger", "s")
    assert talon("-C", str(root), "reconcile", "--wait").code == 0
    assert list(states(root).values()) == ["succeeded"]
    import hashlib

    digest = hashlib.sha256(b"hunter2-secret").hexdigest()
    assert (root / "digest").read_text().split()[0] == digest, "the job got the value"
    for path in (root / "state").rglob("*"):
        if path.is_file():
            assert b"hunter2-secret" not in path.read_bytes(), path
    monkeypatch.delenv("TEST_DB_PASSWORD")
    talon("-C", str(root), "trigger", "s")
    result = talon("-C", str(root), "reconcile", "--wait")
    assert result.code == 1
    failed = [r for r in runs(root).values() if r["state"] == "failed"]
    assert failed[0]["reason"] == "secret 'db': environment variable TEST_DB_PASSWORD is not set"


def test_job_removed_while_its_run_is_open(tmp_path: Path, talon: Talon) -> None:
    root = write_repo(tmp_path, {"schedule/a.yaml": CHAIN})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T00:00:00Z")
    talon("-C", str(root), "trigger", "b", "--now", "2026-11-27T01:00:00Z")
    (root / "schedule/a.yaml").write_text("jobs:\n  a:\n    command: 'true'\n")
    result = talon("-C", str(root), "reconcile", "--now", "2026-11-27T01:01:00Z")
    assert result.code == 0, result.err
    (run,) = runs(root).values()
    assert run["state"] == "skipped"
    assert run["reason"] == "job b is no longer in the schedule"


def test_retry_and_backfill(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n  j:\n    command: 'true'\n    period: monthly\n    trigger: external\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    out = talon(
        "-C",
        str(root),
        "backfill",
        "j",
        "--from",
        "2026-10",
        "--to",
        "2026-12",
        "--now",
        "2026-12-05T00:00:00Z",
    )
    assert out.code == 0, out.err
    assert len(out.lines) == 3
    again = talon("-C", str(root), "backfill", "j", "--from", "2026-10", "--to", "2026-12")
    assert all(line.endswith("exists already") for line in again.lines)
    assert talon("-C", str(root), "reconcile", "--wait").code == 0
    first = out.lines[0]
    retried = talon("-C", str(root), "retry", first, "--now", "2026-12-05T01:00:00Z").out.strip()
    assert retried.endswith(".r2")
    assert talon("-C", str(root), "reconcile", "--wait").code == 0
    got = runs(root)
    assert got[retried]["attempt"] == 2
    assert got[retried]["period"]["key"] == "2026-10"
    assert sorted({r["period"]["key"] for r in got.values()}) == ["2026-10", "2026-11", "2026-12"]
