"""`reconcile --wait` keeps the file of a local run it started until the run ends (or DEFER_S),
and that of a run it created blocked until it ends or starts (or WAITING_S).

Most runs end within DEFER_S, and one file write then records the whole run instead of a write
with the handle and a rewrite at the end; in a chain, a blocked run is written once instead of
three times (created, marked running, ended). What must hold meanwhile: the run's copy is in the
index log, so another process (a pass, `talon cancel`, a pass after a kill -9) finds it there;
a file someone else wrote wins over the deferred copy; nothing runs twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from talon import bookkeeping
from talon.bookkeeping import INDEX_LOG
from talon.passes import WAITING_S, Carry, Deferred, Pass
from talon.repo import Repo, open_repo
from talon.runs import Run
from tests.conftest import run_talon as cli
from tests.conftest import write_repo

NOW = datetime.fromisoformat("2026-11-27T06:00:30+00:00")


def repo_with(tmp_path: Path, jobs: str) -> Path:
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    assert cli(root, "reconcile", "--now", "2026-11-27T05:00:00Z").returncode == 0
    return root


def logged(root: Path, run_id: str) -> list[Run]:
    text = (root / "state/.talon" / INDEX_LOG).read_text()
    return [
        Run.from_json(json.loads(line.split("\t", 1)[1]))
        for line in text.splitlines()
        if line.startswith("=") and line.split("\t", 1)[0].endswith(f"/{run_id}.json")
    ]


def once(repo: Repo, deferred: dict[str, Deferred], carry: Carry | None = None) -> list[str]:
    """One pass of a process whose passes share `deferred` (and `carry`), as `reconcile
    --wait` runs them: its decisions, as "action run" lines."""
    p = Pass(repo.spec, repo.store, NOW, deferred=deferred, carry=carry)
    return [f"{d.action} {d.run}" for d in p.run()]


def passes(
    root: Path,
    deferred: dict[str, Deferred],
    until: str,
    limit: int = 500,
    carry: Carry | None = None,
    repo: Repo | None = None,
) -> list[str]:
    """Passes (see `once`) until one says `until`."""
    repo = repo or open_repo(str(root), {})
    seen: list[str] = []
    for _ in range(limit):
        seen += once(repo, deferred, carry)
        if until in seen:
            return seen
        time.sleep(0.005)
    raise AssertionError(f"never saw {until!r}: {seen}")


def test_a_run_that_ends_soon_gets_its_file_once_with_its_whole_story(tmp_path: Path) -> None:
    root = repo_with(tmp_path, "jobs:\n  a: {command: 'true', trigger: '0 6 * * *'}\n")
    deferred: dict[str, Deferred] = {}
    repo = open_repo(str(root), {})
    first = once(repo, deferred)
    assert "dispatch a@20261127T060000Z" in first, first
    path = root / "state/2026-11-27/a/a@20261127T060000Z.json"
    assert not path.exists(), "the file waits for the run to end"
    copies = logged(root, "a@20261127T060000Z")
    assert copies[-1].state.value == "running"
    pid = (copies[-1].executor or {})["handle"]["pid"]
    assert isinstance(pid, int), "the handle is in the log from the start"
    passes(root, deferred, "succeed a@20261127T060000Z")
    run = json.loads(path.read_text())
    assert run["state"] == "succeeded"
    assert run["executor"]["handle"]["pid"] == pid
    assert [h["state"] for h in run["history"]] == ["ready", "running", "succeeded"]
    assert deferred == {}


def test_a_long_run_gets_its_file_after_the_window(tmp_path: Path) -> None:
    root = repo_with(tmp_path, "jobs:\n  a: {command: 'sleep 30', trigger: '0 6 * * *'}\n")
    deferred: dict[str, Deferred] = {}
    repo = open_repo(str(root), {})
    Pass(repo.spec, repo.store, NOW, deferred=deferred).run()
    path = root / "state/2026-11-27/a/a@20261127T060000Z.json"
    try:
        assert not path.exists()
        time.sleep(0.15)  # > DEFER_S
        Pass(repo.spec, repo.store, NOW, deferred=deferred).run()
        run = json.loads(path.read_text())
        assert run["state"] == "running" and run["executor"]["handle"]["pid"]
        assert deferred == {}
    finally:
        assert cli(root, "cancel", "a@20261127T060000Z").returncode == 0


def test_another_process_writes_a_deferred_file_from_the_log_and_nothing_runs_twice(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    root = repo_with(
        tmp_path,
        f"jobs:\n  a: {{command: 'echo x >> {marker}; sleep 0.5', trigger: '0 6 * * *'}}\n"
        "  b: {command: 'true', trigger: {after: a}}\n",
    )
    deferred: dict[str, Deferred] = {}
    repo = open_repo(str(root), {})
    Pass(repo.spec, repo.store, NOW, deferred=deferred).run()
    path = root / "state/2026-11-27/a/a@20261127T060000Z.json"
    assert not path.exists()
    # A cron `talon reconcile` between two passes of the --wait: the run is only in the log.
    other = cli(root, "reconcile", "--now", "2026-11-27T06:00:31Z")
    assert other.returncode == 0, other.stderr
    # It writes the file from there, quietly: the process keeping it back is alive.
    assert "recover" not in other.stdout, other.stdout
    assert json.loads(path.read_text())["state"] == "running"
    seen = passes(root, deferred, "succeed b@20261127T060000Z.after.a", limit=600)
    assert not [s for s in seen if s.startswith("dispatch a@")], seen
    assert marker.read_text() == "x\n", "a ran once"
    assert json.loads(path.read_text())["state"] == "succeeded"


def test_cancel_finds_a_run_whose_file_is_not_written_yet(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    root = repo_with(
        tmp_path,
        f"jobs:\n  a: {{command: 'echo $$ > {pidfile}; exec sleep 30', trigger: '0 6 * * *'}}\n",
    )
    deferred: dict[str, Deferred] = {}
    repo = open_repo(str(root), {})
    Pass(repo.spec, repo.store, NOW, deferred=deferred).run()
    path = root / "state/2026-11-27/a/a@20261127T060000Z.json"
    assert not path.exists()
    done = cli(root, "cancel", "a@20261127T060000Z")
    assert done.returncode == 0, done.stderr
    assert json.loads(path.read_text())["state"] == "skipped"
    pid = _wait_for_pid(pidfile)
    _wait_gone(pid)
    # The --wait process goes on: the file rules, the run stays skipped.
    Pass(repo.spec, repo.store, NOW, deferred=deferred).run()
    assert deferred == {}
    assert json.loads(path.read_text())["state"] == "skipped"


def test_a_run_cancelled_before_its_handle_is_written_is_stopped_by_the_pass(
    tmp_path: Path,
) -> None:
    """w's file exists (created blocked by a single pass, then marked running by a `--wait`)
    but its handle waits. A `talon cancel` that finds no handle in the file and none in the
    log (here: the log line removed, as if the canceller looked before it was appended)
    cannot stop it; the pass does."""
    pidfile = tmp_path / "pid"
    root = repo_with(
        tmp_path,
        "jobs:\n  a: {command: 'true', trigger: '0 6 * * *'}\n"
        f"  w: {{command: 'echo $$ > {pidfile}; exec sleep 30', trigger: '0 6 * * *',"
        " constraints: {after: [a]}}\n",
    )
    deferred: dict[str, Deferred] = {}
    repo = open_repo(str(root), {})
    Pass(repo.spec, repo.store, NOW).run()  # (a single pass writes w's file at once)
    path = root / "state/2026-11-27/w/w@20261127T060000Z.json"
    assert json.loads(path.read_text())["state"] == "blocked"
    passes(root, deferred, "dispatch w@20261127T060000Z", repo=repo)
    on_disk = json.loads(path.read_text())
    assert on_disk["state"] == "running" and on_disk["executor"]["handle"] is None
    log = root / "state/.talon" / INDEX_LOG
    log.write_text(
        "".join(
            line + "\n"
            for line in log.read_text().splitlines()
            if not (line.startswith("=2026-11-27/w/") and '"pid"' in line)
        )
    )
    bookkeeping._SAVED.clear()
    assert cli(root, "cancel", "w@20261127T060000Z").returncode == 0
    pid = _wait_for_pid(pidfile)
    assert _alive(pid), "the canceller had no handle to stop it with"
    Pass(repo.spec, repo.store, NOW, deferred=deferred).run()
    _wait_gone(pid)
    assert json.loads(path.read_text())["state"] == "skipped"


def test_a_killed_wait_leaves_its_running_run_to_the_next_pass(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    root = repo_with(
        tmp_path,
        f"jobs:\n  a: {{command: 'echo x >> {marker}; sleep 1', trigger: '0 6 * * *'}}\n",
    )
    with subprocess.Popen(
        [sys.executable, "-m", "talon", "-C", str(root), "reconcile", "--wait", "--now", str(NOW)],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("dispatch"):
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    path = root / "state/2026-11-27/a/a@20261127T060000Z.json"
    assert not path.exists(), "killed before the file was due"
    again = cli(root, "reconcile", "--wait", "--now", "2026-11-27T06:00:31Z")
    assert again.returncode == 0, again.stderr
    assert "recover  a@20261127T060000Z" in again.stdout, again.stdout
    assert "succeed  a@20261127T060000Z" in again.stdout, again.stdout
    assert "dispatch" not in again.stdout
    assert marker.read_text() == "x\n"


def _wait_for_pid(pidfile: Path) -> int:
    for _ in range(500):
        if pidfile.exists() and pidfile.read_text().strip():
            return int(pidfile.read_text())
        time.sleep(0.01)
    raise AssertionError("the job never wrote its pid")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] not in "ZX"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int) -> None:
    for _ in range(500):
        if not _alive(pid):
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"process {pid} was not stopped")


def test_a_pass_going_on_from_the_last_view_still_honours_a_cancel(tmp_path: Path) -> None:
    """The passes of a --wait go on from the last pass's view of the open runs (Carry) while
    only they wrote the book; a cancel by another process does not go through the book, and
    is met when the pass writes the run."""
    root = repo_with(
        tmp_path,
        "jobs:\n  a: {command: 'sleep 0.5', trigger: '0 6 * * *'}\n"
        "  w: {command: 'true', trigger: '0 6 * * *', constraints: {after: [a]}}\n",
    )
    deferred: dict[str, Deferred] = {}
    carry = Carry()
    repo = open_repo(str(root), {})
    seen = once(repo, deferred, carry)
    assert "dispatch a@20261127T060000Z" in seen and "block w@20261127T060000Z" in seen, seen
    assert carry.view is not None
    done = cli(root, "cancel", "w@20261127T060000Z")
    assert done.returncode == 0, done.stderr
    seen += passes(root, deferred, "succeed a@20261127T060000Z", limit=300, carry=carry, repo=repo)
    seen += once(repo, deferred, carry)
    assert "succeed a@20261127T060000Z" in seen, seen
    assert "dispatch w@20261127T060000Z" not in seen, seen
    w = json.loads((root / "state/2026-11-27/w/w@20261127T060000Z.json").read_text())
    assert w["state"] == "skipped"


def test_a_run_another_process_creates_is_seen_by_the_next_pass(tmp_path: Path) -> None:
    """`talon trigger` goes through the book (its journal): the next pass reads afresh."""
    root = repo_with(
        tmp_path,
        "jobs:\n  a: {command: 'sleep 0.3', trigger: '0 6 * * *'}\n"
        "  e: {command: 'true', trigger: external}\n",
    )
    deferred: dict[str, Deferred] = {}
    carry = Carry()
    repo = open_repo(str(root), {})
    once(repo, deferred, carry)
    assert carry.view is not None and "e" not in carry.view.open_by_job
    done = cli(root, "trigger", "e", "--now", "2026-11-27T06:00:31Z")
    assert done.returncode == 0, done.stderr
    seen = once(repo, deferred, carry)
    assert any(s.startswith("dispatch e@") for s in seen), seen


def test_a_checkpoint_keeps_the_line_of_a_run_whose_file_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index log is the only record of a run whose file waits: a checkpoint (which
    empties the log) in the middle of a --wait carries its line over, so another process
    still sees the run and what it holds."""
    jobs = (
        "jobs:\n  a: {command: 'sleep 30', trigger: '0 6 * * *', resources: [{select: hosts/n1}]}\n"
    )
    root = write_repo(
        tmp_path, {"schedule/a.yaml": jobs, "resources/hosts.yaml": "n1: {capacity: 1}\n"}
    )
    assert cli(root, "reconcile", "--now", "2026-11-27T05:00:00Z").returncode == 0
    monkeypatch.setattr(bookkeeping, "CHECKPOINT_BYTES", 1)  # every save checkpoints
    deferred: dict[str, Deferred] = {}
    repo = open_repo(str(root), {})
    try:
        seen = once(repo, deferred)
        assert "dispatch a@20261127T060000Z" in seen, seen
        path = root / "state/2026-11-27/a/a@20261127T060000Z.json"
        assert not path.exists()
        assert logged(root, "a@20261127T060000Z"), "carried over the checkpoint"
        other = cli(root, "resources", "--now", "2026-11-27T06:00:31Z")
        assert "a@20261127T060000Z" in other.stdout, other.stdout + other.stderr
    finally:
        assert cli(root, "cancel", "a@20261127T060000Z").returncode == 0


def test_a_wait_lets_the_pass_lock_go_between_windows(tmp_path: Path) -> None:
    """`--wait` keeps the pass lock across passes only while runs of its own have already
    ended (HOLD_S at most): another reconcile meanwhile gets its turn, and between them each
    run happens once."""
    jobs = "jobs:\n  j0: {command: 'sleep 0.05', trigger: '0 6 * * *'}\n" + "".join(
        f"  j{i}: {{command: 'sleep 0.05', trigger: {{after: j{i - 1}}}}}\n" for i in range(1, 30)
    )
    root = repo_with(tmp_path, jobs)
    with subprocess.Popen(
        [sys.executable, "-m", "talon", "-C", str(root), "reconcile", "--wait", "--now", str(NOW)],
        stdout=subprocess.PIPE,
        text=True,
    ) as waiting:
        others = []
        for _ in range(5):
            started = time.monotonic()
            other = cli(root, "reconcile", "--now", "2026-11-27T06:00:31Z")
            others.append(time.monotonic() - started)
            assert other.returncode == 0, other.stderr
            time.sleep(0.1)
        out, _ = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, out
    assert max(others) < 5, others  # never stuck behind the --wait
    runs = [json.loads(p.read_text()) for p in (root / "state/2026-11-27").glob("j*/j*.json")]
    assert len(runs) == 30 and all(r["state"] == "succeeded" for r in runs), [
        (r["id"], r["state"]) for r in runs if r["state"] != "succeeded"
    ]


# --- runs created waiting (blocked, or ready and not started) --------------------------------

CHAIN = (
    "jobs:\n  a: {command: 'sleep 0.3', trigger: '0 6 * * *'}\n"
    "  b: {command: 'true', trigger: '0 6 * * *', constraints: {after: [a]}}\n"
    "  c: {command: 'true', trigger: '0 6 * * *', constraints: {after: [b]}}\n"
)


def test_a_blocked_run_is_written_once_when_its_chain_moves_within_the_window(
    tmp_path: Path,
) -> None:
    root = repo_with(tmp_path, CHAIN)
    deferred: dict[str, Deferred] = {}
    repo = open_repo(str(root), {})
    carry = Carry()
    first = once(repo, deferred, carry)
    assert "block c@20261127T060000Z" in first, first
    c = root / "state/2026-11-27/c/c@20261127T060000Z.json"
    assert not c.exists(), "created blocked within a --wait: the file waits"
    assert logged(root, "c@20261127T060000Z")[-1].state.value == "blocked"
    # Meanwhile the read-only commands find it in the index log.
    status = cli(root, "status", "--json", "--now", "2026-11-27T06:00:31Z")
    assert {"c@20261127T060000Z": "blocked"}.items() <= {
        r["run"]: r["state"] for r in json.loads(status.stdout)
    }.items(), status.stdout
    show = cli(root, "show", "c@20261127T060000Z")
    assert show.returncode == 0 and "not written yet" in show.stdout, show.stderr
    explain = cli(root, "explain", "c@20261127T060000Z", "--now", "2026-11-27T06:00:31Z")
    assert explain.returncode == 0 and "is blocked" in explain.stdout, explain.stderr
    by_period = cli(root, "status", "--period", "2026-11-27", "--json")
    assert "c@20261127T060000Z" in {r["run"] for r in json.loads(by_period.stdout)}
    job = cli(root, "explain", "c", "--json", "--now", "2026-11-27T06:00:31Z")
    assert [r["run"] for r in json.loads(job.stdout)["runs"]] == ["c@20261127T060000Z"]
    passes(root, deferred, "succeed c@20261127T060000Z", carry=carry, repo=repo)
    run = json.loads(c.read_text())
    assert [h["state"] for h in run["history"]] == ["blocked", "ready", "running", "succeeded"]
    assert deferred == {}


def test_a_blocked_run_gets_its_file_after_the_waiting_window(tmp_path: Path) -> None:
    root = repo_with(
        tmp_path,
        "jobs:\n  a: {command: 'sleep 30', trigger: '0 6 * * *'}\n"
        "  b: {command: 'true', trigger: '0 6 * * *', constraints: {after: [a]}}\n",
    )
    deferred: dict[str, Deferred] = {}
    repo = open_repo(str(root), {})
    once(repo, deferred)
    b = root / "state/2026-11-27/b/b@20261127T060000Z.json"
    try:
        assert not b.exists()
        time.sleep(WAITING_S + 0.05)
        once(repo, deferred)
        assert json.loads(b.read_text())["state"] == "blocked"
        assert list(deferred) == ["2026-11-27/a/a@20261127T060000Z.json"] or deferred == {}
    finally:
        assert cli(root, "cancel", "a@20261127T060000Z").returncode == 0


def test_a_wait_that_ends_leaves_no_blocked_run_without_its_file(tmp_path: Path) -> None:
    """`--wait` ends when nothing is ready or running; a run still blocked then waits for
    something outside it, and its file is written before the process goes."""
    root = repo_with(
        tmp_path,
        "jobs:\n  x: {command: 'true', trigger: external}\n"
        "  b: {command: 'true', trigger: '0 6 * * *', constraints: {after: [x]}}\n",
    )
    result = cli(root, "reconcile", "--wait", "--now", "2026-11-27T06:00:30Z")
    assert result.returncode == 0, result.stderr
    b = json.loads((root / "state/2026-11-27/b/b@20261127T060000Z.json").read_text())
    assert b["state"] == "blocked" and b["reason"], b


def test_cancel_of_a_blocked_run_whose_file_waits_keeps_it_from_starting(
    tmp_path: Path,
) -> None:
    root = repo_with(tmp_path, CHAIN)
    deferred: dict[str, Deferred] = {}
    repo = open_repo(str(root), {})
    once(repo, deferred)
    assert not (root / "state/2026-11-27/b/b@20261127T060000Z.json").exists()
    assert cli(root, "cancel", "b@20261127T060000Z").returncode == 0
    seen = passes(root, deferred, "succeed a@20261127T060000Z", repo=repo)
    for _ in range(20):  # a few more: b must not start, nor c (blocked on b, now never)
        seen += once(repo, deferred)
    assert not any(s.startswith("dispatch b@") or s.startswith("dispatch c@") for s in seen)
    b = json.loads((root / "state/2026-11-27/b/b@20261127T060000Z.json").read_text())
    assert b["state"] == "skipped"
    # c, waiting on b, is checked again at once, not at its next poll (review).
    c = deferred.get("2026-11-27/c/c@20261127T060000Z.json")
    c_run = (
        c.run
        if c is not None
        else Run.from_json(
            json.loads((root / "state/2026-11-27/c/c@20261127T060000Z.json").read_text())
        )
    )
    assert "waiting for b to succeed" not in (c_run.reason or ""), c_run.reason


def test_a_blocked_run_is_checked_again_after_its_poll_in_a_carried_view(
    tmp_path: Path,
) -> None:
    """Nothing it waits on changes (a plugin's verdict flips): the carried view still checks
    it again once its poll interval has passed."""
    gate = tmp_path / "open"
    root = write_repo(
        tmp_path,
        {
            # (A module name of its own: another test's `rules` may be imported already.)
            "talon.yaml": "timezone: UTC\nplugins:\n  constraints:\n    gate: rules_poll:gate\n",
            "lib/rules_poll.py": (
                "import os\n"
                "def gate(run, options, view, now):\n"
                f"    if os.path.exists({str(gate)!r}):\n"
                "        return 'pass', 'open'\n"
                "    return 'block', 'closed'\n"
            ),
            "schedule/a.yaml": (
                "jobs:\n  g: {command: 'true', trigger: '0 6 * * *', poll: 0.2s,"
                " constraints: {gate: true}}\n"
            ),
        },
    )
    assert cli(root, "reconcile", "--now", "2026-11-27T05:00:00Z").returncode == 0
    repo = open_repo(str(root), {})
    deferred: dict[str, Deferred] = {}
    carry = Carry()
    began = time.monotonic()

    def clock() -> datetime:
        return NOW + timedelta(seconds=time.monotonic() - began)

    def one() -> list[str]:
        p = Pass(repo.spec, repo.store, clock(), deferred=deferred, carry=carry, clock=clock)
        return [f"{d.action} {d.run}" for d in p.run()]

    assert "block g@20261127T060000Z" in one()
    gate.touch()
    seen: list[str] = []
    while time.monotonic() - began < 0.9:  # within RELOAD_S: the view is carried throughout
        seen += one()
        if "dispatch g@20261127T060000Z" in seen:
            break
        time.sleep(0.01)
    assert "dispatch g@20261127T060000Z" in seen, seen


def test_a_waiting_run_written_from_the_log_by_another_pass_still_runs(tmp_path: Path) -> None:
    """b is ready in this process's memory (a succeeded) and waits for a host z holds. A plain
    reconcile between two windows writes b's file from its line in the log: that line must
    say ready, not the blocked it was created as, or b waits for a forever (review of the
    change that keeps waiting runs' files back)."""
    root = write_repo(
        tmp_path,
        {
            "schedule/a.yaml": (
                "jobs:\n"
                "  z: {command: 'sleep 0.6', trigger: '0 6 * * *', resources: [{select: h/n1}]}\n"
                "  a: {command: 'true', trigger: '0 6 * * *'}\n"
                "  b: {command: 'true', trigger: '0 6 * * *', resources: [{select: h/n1}],"
                " constraints: {after: [a]}}\n"
            ),
            "resources/h.yaml": "n1: {capacity: 1}\n",
        },
    )
    assert cli(root, "reconcile", "--now", "2026-11-27T05:00:00Z").returncode == 0
    repo = open_repo(str(root), {})
    deferred: dict[str, Deferred] = {}
    passes(root, deferred, "succeed a@20261127T060000Z", repo=repo)
    b = "b@20261127T060000Z"
    assert deferred[f"2026-11-27/b/{b}.json"].run.state.value == "ready"
    assert logged(root, b)[-1].state.value == "ready"
    other = cli(root, "reconcile", "--now", "2026-11-27T06:00:31Z")
    assert "recover" not in other.stdout, other.stdout  # (a live --wait keeps it back)
    assert json.loads((root / f"state/2026-11-27/b/{b}.json").read_text())["state"] == "ready"
    seen = passes(root, deferred, f"succeed {b}", repo=repo)
    assert f"dispatch {b}" in seen


def test_talon_retry_does_not_take_the_id_of_a_retry_kept_back(tmp_path: Path) -> None:
    """An automatic retry a --wait created blocked is only in the log: `talon retry` of the
    failed attempt must number its run after it, not reuse its id (review)."""
    root = write_repo(
        tmp_path,
        {
            # (A module name of its own: another test's `rules` may be imported already.)
            "talon.yaml": "timezone: UTC\nplugins:\n  constraints:\n    gate: rules_retry:gate\n",
            "lib/rules_retry.py": (
                "def gate(run, options, view, now):\n"
                "    return ('block', 'not yet') if run.attempt > 1 else ('pass', 'first')\n"
            ),
            "schedule/a.yaml": (
                "jobs:\n  a: {command: 'false', trigger: '0 6 * * *', retries: 2,"
                " constraints: {gate: true}}\n"
                "  z: {command: 'sleep 30', trigger: '0 6 * * *'}\n"  # (keeps the --wait going)
            ),
        },
    )
    assert cli(root, "reconcile", "--now", "2026-11-27T05:00:00Z").returncode == 0
    repo = open_repo(str(root), {})
    deferred: dict[str, Deferred] = {}
    try:
        passes(root, deferred, "retry a@20261127T060000Z.r2", repo=repo)
        assert not (root / "state/2026-11-27/a/a@20261127T060000Z.r2.json").exists()
        made = cli(root, "retry", "a@20261127T060000Z", "--now", "2026-11-27T06:00:40Z")
        assert made.returncode == 0, made.stderr
        assert made.stdout.strip() == "a@20261127T060000Z.r3"
        assert logged(root, "a@20261127T060000Z.r2")[-1].attempt == 2
    finally:
        assert cli(root, "cancel", "z@20261127T060000Z").returncode == 0


def test_a_run_whose_keeper_is_gone_is_recovered_and_said_so(tmp_path: Path) -> None:
    """The `@` line before a run's line in the log names the process keeping it back: a pass
    writing it from there stays quiet while that process lives, and says "recover" when it is
    gone (here: its line rewritten to name a process that never existed)."""
    root = repo_with(tmp_path, CHAIN)
    deferred: dict[str, Deferred] = {}
    repo = open_repo(str(root), {})
    once(repo, deferred)
    log = root / "state/.talon" / INDEX_LOG
    text = log.read_text()
    assert f"@{bookkeeping.whoami()}\n=2026-11-27/c/" in text
    host_boot = bookkeeping.whoami().rpartition(":")[0]
    gone = text.replace(
        f"@{bookkeeping.whoami()}\n=2026-11-27/c/", f"@{host_boot}:999999-1\n=2026-11-27/c/"
    )
    # b's line loses its `@` line: a line not kept back on purpose (a pass's intent, say) is
    # reported whoever wrote it.
    log.write_text(gone.replace(f"@{bookkeeping.whoami()}\n=2026-11-27/b/", "=2026-11-27/b/"))
    bookkeeping._SAVED.clear()
    try:
        other = cli(root, "reconcile", "--now", "2026-11-27T06:00:31Z")
        assert "recover  c@20261127T060000Z" in other.stdout, other.stdout
        assert "recover  b@20261127T060000Z" in other.stdout, other.stdout
    finally:
        assert cli(root, "cancel", "a@20261127T060000Z").returncode in (0, 1)
