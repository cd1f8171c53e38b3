"""The inspection and repair commands: show, log, explain, status, resources, fsck; plugins,
in-process jobs, executor limits; every run file Talon writes matches its schema."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from talon.schema import check_data
from tests.conftest import Talon, write_repo


@pytest.fixture(autouse=True)
def talon_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")


def run_files(root: Path) -> list[Path]:
    return sorted((root / "state").glob("*/*/*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


JOBS = """
jobs:
  up:
    command: echo "hello from up"; echo oops >&2
    trigger: "0 6 * * *"
  down:
    command: 'true'
    trigger: "0 6 * * *"
    constraints: {after: [up], start_by: "07:00"}
"""


def test_show_log_explain(tmp_path: Path, talon: Talon) -> None:
    root = write_repo(tmp_path, {"schedule/a.yaml": JOBS})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T00:00:00Z")
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T06:00:10Z")
    # down is blocked while up runs (or is ready and collected later): explain says why.
    explained = talon(
        "-C", str(root), "explain", "down@20261127T060000Z", "--now", "2026-11-27T06:00:11Z"
    )
    assert explained.code == 0
    assert explained.lines[0].startswith("down@20261127T060000Z (down, 2026-11-27) is ")
    assert talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T06:01:00Z").code == 0
    shown = talon("-C", str(root), "show", "up@20261127T060000Z", "--json")
    assert json.loads(shown.out)["state"] == "succeeded"
    log = talon("-C", str(root), "log", "up@20261127T060000Z")
    assert log.code == 0
    assert "hello from up" in log.out and "oops" in log.out
    by_path = talon("-C", str(root), "show", str(run_files(root)[0]))
    assert by_path.code == 0 and "state: succeeded" in by_path.out
    job = talon("-C", str(root), "explain", "down", "--now", "2026-11-27T08:00:00Z")
    assert "down@20261127T060000Z: succeeded" in job.out
    assert "next trigger: 2026-11-28T06:00:00+00:00" in job.out
    assert talon("-C", str(root), "show", "nope@20261127T060000Z").code == 2


def test_start_by_fails_with_reason_and_status_lists_it(tmp_path: Path, talon: Talon) -> None:
    root = write_repo(tmp_path, {"schedule/a.yaml": JOBS})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T00:00:00Z")
    # up is cancelled by hand before it starts, so down can never start in time.
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T06:00:00Z")
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T07:00:30Z")
    down = load(root / "state/2026-11-27/down/down@20261127T060000Z.json")
    if down["state"] == "failed":
        assert down["reason"] == "start_by 07:00 passed at 07:00:30"
    status = talon("-C", str(root), "status", "--now", "2026-11-27T08:00:00Z", "--json")
    rows = json.loads(status.out)
    assert {r["job"] for r in rows} == {"up", "down"}


def test_every_written_run_file_matches_the_schema(tmp_path: Path, talon: Talon) -> None:
    jobs = JOBS + "  ext:\n    command: 'exit 2'\n    trigger: external\n    retries: 1\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T00:00:00Z")
    talon("-C", str(root), "trigger", "ext", "--param", "k=v")
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T06:00:10Z")
    files = run_files(root)
    assert len(files) >= 4
    for path in files:
        assert check_data("run", load(path)) == [], path


def test_plugin_constraint(tmp_path: Path, talon: Talon) -> None:
    config = "timezone: UTC\nplugins:\n  constraints:\n    weekday_only: rules:weekday_only\n"
    plugin = (
        "def weekday_only(run, options, view, now):\n"
        "    if now.weekday() >= 5:\n"
        "        return 'cancel', f'{now:%A} is not a weekday'\n"
        "    return 'pass', 'a weekday'\n"
    )
    jobs = (
        "jobs:\n  j:\n    command: 'true'\n    trigger: external\n"
        "    constraints: {weekday_only: true}\n"
    )
    root = write_repo(
        tmp_path, {"talon.yaml": config, "lib/rules.py": plugin, "schedule/a.yaml": jobs}
    )
    assert talon("-C", str(root), "validate").code == 0
    talon("-C", str(root), "trigger", "j", "--now", "2026-11-28T10:00:00Z")  # a Saturday
    talon("-C", str(root), "reconcile", "--now", "2026-11-28T10:00:01Z")
    (only,) = run_files(root)
    run = load(only)
    assert run["state"] == "skipped"
    assert run["reason"] == "Saturday is not a weekday"
    assert run["checks"] == [
        {
            "constraint": "weekday_only",
            "verdict": "cancel",
            "reason": "Saturday is not a weekday",
            "at": run["checks"][0]["at"],
        }
    ]


def test_inprocess_job_reports_progress_and_artifacts(tmp_path: Path, talon: Talon) -> None:
    code = (
        "def work(ctx):\n"
        "    ctx.progress(50)\n"
        "    ctx.artifact('file:///tmp/' + ctx.params['name'], name='out')\n"
        "    print('in process', ctx.period['key'])\n"
    )
    jobs = (
        "jobs:\n  py:\n    call: mod:work\n    trigger: external\n    params: {name: result.csv}\n"
    )
    root = write_repo(tmp_path, {"lib/mod.py": code, "schedule/a.yaml": jobs})
    run_id = talon("-C", str(root), "trigger", "py", "--now", "2026-11-27T10:00:00Z").out.strip()
    assert talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T10:00:01Z").code == 0
    run = load(run_files(root)[0])
    assert run["state"] == "succeeded", talon("-C", str(root), "log", run_id).out
    assert run["executor"]["type"] == "inprocess"
    assert run["progress"] == {"kind": "percent", "percent": 50.0}
    assert [a["url"] for a in run["artifacts"]] == ["file:///tmp/result.csv"]
    assert "in process 2026-11-27" in talon("-C", str(root), "log", run_id).out


def test_executor_max_parallel_and_resource_waiters(tmp_path: Path, talon: Talon) -> None:
    config = "timezone: UTC\nexecutors:\n  local: {type: local, max_parallel: 1}\n"
    jobs = "jobs:\n" + "".join(
        f"  j{i}:\n    command: 'sleep 0.2'\n    trigger: external\n" for i in range(3)
    )
    root = write_repo(tmp_path, {"talon.yaml": config, "schedule/a.yaml": jobs})
    for i in range(3):
        talon("-C", str(root), "trigger", f"j{i}")
    first = talon("-C", str(root), "reconcile")
    assert sum(1 for line in first.lines if line.startswith("dispatch")) == 1
    assert sum(1 for line in first.lines if "waiting for executor local: 1 of 1" in line) == 2
    assert talon("-C", str(root), "reconcile", "--wait").code == 0
    assert all(load(p)["state"] == "succeeded" for p in run_files(root))


def test_resources_command_shows_holders_and_waiters(tmp_path: Path, talon: Talon) -> None:
    pool = "gpu:\n  g1: {type: a100, capacity: 1}\n"
    jobs = "jobs:\n" + "".join(
        f"  t{i}:\n    command: 'sleep 1'\n    trigger: external\n"
        "    resources: [{select: pool/gpu/*}]\n"
        for i in range(2)
    )
    root = write_repo(tmp_path, {"resources/pool.yaml": pool, "schedule/a.yaml": jobs})
    a = talon("-C", str(root), "trigger", "t0").out.strip()
    b = talon("-C", str(root), "trigger", "t1").out.strip()
    talon("-C", str(root), "reconcile")
    rows = json.loads(talon("-C", str(root), "resources", "--json").out)
    assert rows == [
        {
            "path": "pool/gpu/g1",
            "capacity": 1,
            "in_use": 1,
            "holders": [{"run": a, "slots": 1}],
            "waiting": [b],
            "attrs": {"type": "a100"},
        }
    ]
    waiting = load(next(p for p in run_files(root) if p.name.startswith("t1")))
    assert waiting["state"] == "ready"
    assert (
        waiting["reason"]
        == "waiting for resources: pool/gpu/* needs 1 with 1 free slot(s), 0 of 1 available"
    )
    talon("-C", str(root), "reconcile", "--wait")


def test_fsck_reports_and_repairs(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n  j:\n    command: 'true'\n    trigger: external\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    ids = [
        talon("-C", str(root), "trigger", "j", "--now", f"2026-11-27T10:00:0{i}Z").out.strip()
        for i in range(3)
    ]
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T10:01:00Z")
    d = root / "state/2026-11-27/j"
    (d / f"{ids[0]}.json").write_text("{ truncated")
    (d / ".DS_Store").write_bytes(b"\0")
    (d / "notes.txt").write_text("a person's file")
    (d / f".{ids[1]}.json.tmp-999999").write_text("{half")
    clean = talon("-C", str(root), "fsck")
    assert clean.code == 1
    assert any("unreadable" in line for line in clean.lines)
    assert any("temporary file left by a killed writer" in line for line in clean.lines)
    assert any("notes.txt: foreign file" in line for line in clean.lines)
    repaired = talon("-C", str(root), "fsck", "--repair")
    assert repaired.code == 0
    # Nothing is deleted: the damaged file and the temp file are kept, moved aside.
    assert len(list(d.glob(f"{ids[0]}.json.corrupt-*"))) == 1
    assert list((root / "state/.talon/quarantine").iterdir())
    assert (d / "notes.txt").read_text() == "a person's file"
    again = talon("-C", str(root), "fsck")
    assert again.code == 0, again.out


def state_snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under state/ (bookkeeping included): its bytes and modification time."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted((root / "state").rglob("*"))
        if p.is_file()
    }


def start_sleeper(tmp_path: Path, talon: Talon) -> tuple[Path, Path, int]:
    """A repository with one local run of `sleep 300` under way: (root, run file, wrapper pid).
    The wrapper leads a process group of its own, with the sleep in it."""
    jobs = "jobs:\n  s:\n    command: sleep 300\n    trigger: external\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "trigger", "s", "--now", "2026-11-27T10:00:00Z")
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T10:00:01Z")
    (path,) = run_files(root)
    run = load(path)
    assert run["state"] == "running", run
    return root, path, int(run["executor"]["handle"]["pid"])


def kill_run(pid: int) -> None:
    """SIGKILL the wrapper and its command, and collect the wrapper (this process started it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def test_fsck_check_reports_a_run_whose_process_vanished(tmp_path: Path, talon: Talon) -> None:
    """Regression: check mode said "state is clean" for a run whose wrapper was killed -9,
    which `--repair` then settled as lost."""
    root, path, pid = start_sleeper(tmp_path, talon)
    kill_run(pid)
    before = state_snapshot(root)
    checked = talon("-C", str(root), "fsck")
    reason = f"process {pid} vanished without recording an exit status"
    assert checked.lines == [
        f"{path}: running, but its process is gone: {reason}; --repair settles it as failed (lost)"
    ]
    assert checked.code == 1
    assert state_snapshot(root) == before  # a check writes nothing
    # What the check said is what --repair does.
    assert talon("-C", str(root), "fsck", "--repair").code == 0
    settled = load(path)
    assert (settled["state"], settled["reason"]) == ("failed", "lost")  # (SPEC: reason `lost`)
    assert settled["history"][-1]["reason"] == f"lost: {reason}"  # and how, in the history


def test_fsck_check_does_not_report_a_live_run(tmp_path: Path, talon: Talon) -> None:
    root, path, pid = start_sleeper(tmp_path, talon)
    try:
        before = state_snapshot(root)
        checked = talon("-C", str(root), "fsck")
        assert (checked.code, checked.lines) == (0, ["state is clean"])
        assert state_snapshot(root) == before
        assert load(path)["state"] == "running"
    finally:
        kill_run(pid)


def test_damaged_run_does_not_stop_other_jobs(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n" + "".join(
        f"  {n}:\n    command: 'true'\n    trigger: external\n" for n in "ab"
    )
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    ra = talon("-C", str(root), "trigger", "a").out.strip()
    rb = talon("-C", str(root), "trigger", "b").out.strip()
    path_a = next(p for p in run_files(root) if p.name.startswith(ra))
    path_a.write_text('{"id": "x"')
    result = talon("-C", str(root), "reconcile", "--wait")
    assert result.code == 0
    assert f"{path_a}: unreadable run file" in result.err
    assert load(next(p for p in run_files(root) if p.name.startswith(rb)))["state"] == "succeeded"
    assert len(list(path_a.parent.glob("*.corrupt-*"))) == 1


def test_stale_lock_file_does_not_block(tmp_path: Path, talon: Talon) -> None:
    """A lock file left by a killed process (flock mode): the kernel lock died with it."""
    jobs = "jobs:\n  j:\n    command: 'true'\n    trigger: external\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    locks = root / "state/.talon/locks"
    locks.mkdir(parents=True)
    (locks / "@pass.lock").write_text("12345\n")
    (locks / "j.lock").write_text("")
    talon("-C", str(root), "trigger", "j")
    assert talon("-C", str(root), "reconcile", "--wait").code == 0
    assert load(run_files(root)[0])["state"] == "succeeded"


def test_lockfile_mode_runs(tmp_path: Path, talon: Talon) -> None:
    config = "timezone: UTC\nstate: {type: files, path: state, lock_mode: lockfile}\n"
    jobs = "jobs:\n  j:\n    command: 'true'\n    trigger: external\n"
    root = write_repo(tmp_path, {"talon.yaml": config, "schedule/a.yaml": jobs})
    talon("-C", str(root), "trigger", "j")
    assert talon("-C", str(root), "reconcile", "--wait").code == 0
    assert load(run_files(root)[0])["state"] == "succeeded"
    # No marker is left behind once the commands are done.
    assert not list((root / "state/.talon/locks").glob("*.lock"))


def test_plan_simulates_a_day_and_writes_nothing(tmp_path: Path, talon: Talon) -> None:
    chain = (
        "jobs:\n"
        "  a:\n    command: 'true'\n    trigger: '0 6 * * *'\n    expected_duration: 10m\n"
        "  b:\n    command: 'true'\n    trigger: {after: a}\n    expected_duration: 5m\n"
    )
    root = write_repo(tmp_path, {"schedule/a.yaml": chain})
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    result = talon(
        "-C", str(root), "plan", "--now", "2026-11-27T00:00:00Z", "--until", "2026-11-27T12:00:00Z"
    )
    assert result.code == 0
    assert result.lines == [
        "2026-11-27T06:00:00+00:00  create   a@20261127T060000Z: cron trigger at 2026-11-27T06:00:00+00:00",
        "2026-11-27T06:00:00+00:00  ready    a@20261127T060000Z: nothing holds it back",
        "2026-11-27T06:00:00+00:00  dispatch a@20261127T060000Z: on local",
        # Dependants are created before their upstream is marked, so a crash between the two
        # cannot lose them.
        "2026-11-27T06:10:00+00:00  create   b@20261127T060000Z.after.a: a succeeded (a@20261127T060000Z)",
        "2026-11-27T06:10:00+00:00  ready    b@20261127T060000Z.after.a: nothing holds it back",
        "2026-11-27T06:10:00+00:00  succeed  a@20261127T060000Z: assumed to succeed after its expected duration (plan)",
        "2026-11-27T06:10:00+00:00  dispatch b@20261127T060000Z.after.a: on local",
        "2026-11-27T06:15:00+00:00  succeed  b@20261127T060000Z.after.a: assumed to succeed after its expected duration (plan)",
    ]
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before, "plan wrote files"
    now_only = talon("-C", str(root), "plan", "--now", "2026-11-27T00:00:00Z")
    assert now_only.lines == ["nothing to do"]


def test_waiting_runs_are_not_rewritten_every_pass(tmp_path: Path, talon: Talon) -> None:
    """A ready run waiting for its executor keeps its file as it is: no churn in git diff."""
    config = "timezone: UTC\nexecutors:\n  local: {type: local, max_parallel: 1}\n"
    jobs = "jobs:\n" + "".join(
        f"  j{i}:\n    command: 'sleep 2'\n    trigger: external\n" for i in range(3)
    )
    root = write_repo(tmp_path, {"talon.yaml": config, "schedule/a.yaml": jobs})
    for i in range(3):
        talon("-C", str(root), "trigger", f"j{i}")
    talon("-C", str(root), "reconcile")
    waiting = {p: p.read_text() for p in run_files(root) if load(p)["state"] == "ready"}
    assert len(waiting) == 2
    for _ in range(3):
        again = talon("-C", str(root), "reconcile")
        assert not any(line.startswith("wait") for line in again.lines), again.out
    assert {p: p.read_text() for p in waiting} == waiting
    talon("-C", str(root), "reconcile", "--wait")
