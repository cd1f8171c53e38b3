"""`talon watch`: the pure timer and event rules as case tables, then real watchers.

The end-to-end tests start `python -m talon -C REPO watch --json` as a subprocess, with the real
clock and real detached runs, and wait on its output with deadlines: nothing is mocked.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from talon.runs import State
from talon.watch import (
    EPSILON_S,
    STUCK_RETRY_S,
    Change,
    OpenRun,
    Wake,
    backoff_s,
    classify,
    next_wake,
)
from tests.conftest import write_repo

# --- the timer -------------------------------------------------------------------------------

T = 1_800_000_000.0  # the last pass, epoch seconds


@pytest.mark.parametrize(
    ("due", "runs", "expected"),
    [
        pytest.param({}, [], Wake(T + 60, "full pass"), id="nothing: the full pass"),
        pytest.param({"a": None}, [], Wake(T + 60, "full pass"), id="external job: never due"),
        pytest.param(
            {"a": T + 30, "b": T + 10},
            [],
            Wake(T + 10 + EPSILON_S, "trigger b"),
            id="earliest trigger",
        ),
        pytest.param({"a": T + 600}, [], Wake(T + 60, "full pass"), id="trigger after full pass"),
        pytest.param(
            {},
            [OpenRun("a@1", State.BLOCKED, 30.0, checked=T - 20)],
            Wake(T + 10 + EPSILON_S, "poll a@1"),
            id="blocked: last check + poll",
        ),
        pytest.param(
            {},
            [OpenRun("a@1", State.BLOCKED, 30.0, checked=None)],
            Wake(T + 30 + EPSILON_S, "poll a@1"),
            id="blocked, never checked: last pass + poll",
        ),
        pytest.param(
            {},
            [OpenRun("a@1", State.READY, 20.0)],
            Wake(T + 20 + EPSILON_S, "poll a@1"),
            id="ready (waiting for a slot): last pass + poll",
        ),
        pytest.param(
            {},
            [OpenRun("a@1", State.RUNNING, 120.0, deadline=T + 5)],
            Wake(T + 5 + EPSILON_S, "deadline a@1"),
            id="running: its timeout",
        ),
        pytest.param(
            {},
            [OpenRun("a@1", State.BLOCKED, 600.0, checked=T - 20, deadline=T + 40)],
            Wake(T + 40 + EPSILON_S, "deadline a@1"),
            id="blocked: its start_by before its poll",
        ),
        pytest.param(
            {"a": T + 50},
            [OpenRun("a@1", State.RUNNING, 45.0)],
            Wake(T + 45 + EPSILON_S, "poll a@1"),
            id="running: poll before trigger",
        ),
        pytest.param(
            {"a": T - 5},
            [],
            Wake(T + STUCK_RETRY_S, "trigger a (retry)"),
            id="due before the last pass: retried, no spin",
        ),
        pytest.param(
            {},
            [OpenRun("a@1", State.BLOCKED, 30.0, checked=T - 100)],
            Wake(T + STUCK_RETRY_S, "poll a@1 (retry)"),
            id="poll overdue: retried, no spin",
        ),
    ],
)
def test_next_wake(due: dict[str, float | None], runs: list[OpenRun], expected: Wake) -> None:
    assert next_wake(T, due, runs, 60.0) == expected


def test_next_wake_over_many_jobs_is_the_minimum() -> None:
    due: dict[str, float | None] = {f"j{i}": T + 1000 + (i * 7919) % 5000 for i in range(10_000)}
    due["j4242"] = T + 3
    assert next_wake(T, due, [], 3600.0) == Wake(T + 3 + EPSILON_S, "trigger j4242")


@pytest.mark.parametrize(
    ("failures", "expected"), [(1, 1.0), (2, 2.0), (3, 5.0), (5, 30.0), (50, 30.0)]
)
def test_backoff(failures: int, expected: float) -> None:
    assert backoff_s(failures, 60.0) == expected
    assert backoff_s(failures, 1.5) == min(expected, 1.5)


# --- what an event means ---------------------------------------------------------------------

ROOT, STATE = "/r", "/r/state"


@pytest.mark.parametrize(
    ("kind", "path", "is_dir", "expected"),
    [
        ("closed", "/r/talon.yaml", False, Change.CONFIG),
        ("moved", "/r/talon.yaml", False, Change.CONFIG),  # editors save by rename
        ("closed", "/r/README.md", False, None),
        ("created", "/r/schedule", True, Change.CONFIG),
        ("closed", "/r/schedule/etl/a.yaml", False, Change.CONFIG),
        ("deleted", "/r/resources/hosts.yml", False, Change.CONFIG),
        ("created", "/r/schedule/sub", True, Change.CONFIG),
        ("closed", "/r/schedule/.a.yaml.swp", False, None),
        ("closed", "/r/schedule/a.yaml~", False, None),
        ("closed", "/r/schedule/4913", False, None),
        ("closed", "/r/schedule/.git/a.yaml", False, None),
        ("created", "/r/state/2026-11-27/a/a@1.json", False, Change.RUN),
        ("moved", "/r/state/2026-11-27/a/a@1.json", False, Change.RUN),
        ("deleted", "/r/state/2026-11-27/a/a@1.json", False, Change.RUN),
        ("closed", "/r/state/2026-11-27/a/a@1.log", False, None),
        ("closed", "/r/state/2026-11-27/a/.a@1.json.tmp-42", False, None),
        ("moved", "/r/state/2026-11-27/a/a@1.json.corrupt-20261127T000000Z", False, None),
        ("created", "/r/state/2026-11-27/a", True, None),
        ("closed", "/r/state/.talon/journal", False, Change.JOURNAL),
        ("moved", "/r/state/.talon/index.json", False, Change.JOURNAL),  # another pass's checkpoint
        ("closed", "/r/state/.talon/index.log", False, Change.JOURNAL),  # another pass's changes
        ("created", "/r/state/.talon/index.log", False, None),
        ("moved", "/r/state/.talon/spec.cache", False, None),
        ("closed", "/r/state/.talon/locks/@pass.lock", False, None),
        ("closed", "/r/state/.talon/proc/a.a@1.1234.rc", False, Change.EXIT),
        ("created", "/r/state/.talon/proc/a.a@1.1234.rc", False, None),  # not written yet
        ("closed", "/r/state/.talon/proc/.a.tmp", False, None),
        ("closed", "/elsewhere/talon.yaml", False, None),
        ("closed", "/r/state", True, None),
    ],
)
def test_classify(kind: str, path: str, is_dir: bool, expected: Change | None) -> None:
    assert classify(kind, path, is_dir=is_dir, root=ROOT, state=STATE) is expected


def test_classify_state_outside_the_repository() -> None:
    state = "/var/talon/state"
    got = classify("created", f"{state}/once/a/a@1.json", is_dir=False, root=ROOT, state=state)
    assert got is Change.RUN


# --- real watchers ---------------------------------------------------------------------------

DEADLINE_S = 15.0
EXTERNAL = "jobs:\n  a:\n    command: {a}\n    trigger: external\n"
CHAIN = (
    "jobs:\n"
    "  a:\n    command: echo a\n    trigger: external\n"
    "  b:\n    command: echo b\n    trigger: {after: a}\n"
    "  c:\n    command: echo c\n    trigger: {after: b}\n"
)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALON_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def talon_cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "talon", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )


def trigger(repo: Path, job: str) -> str:
    done = talon_cli(repo, "trigger", job)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Watching:
    """A `talon watch --json` subprocess; its stdout lines (JSON) and stderr lines, read by
    threads so that the test can wait for them with deadlines."""

    def __init__(self, repo: Path, *extra: str) -> None:
        self.repo = repo
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "talon", "-C", str(repo), "watch", "--json", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.err: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        out, err = self.proc.stdout, self.proc.stderr
        self.readers = [
            threading.Thread(target=self._read_out, args=(out,), daemon=True),
            threading.Thread(target=self._read_err, args=(err,), daemon=True),
        ]
        for t in self.readers:
            t.start()

    def _read_out(self, stream: Any) -> None:
        for line in stream:
            self.events.put(json.loads(line))

    def _read_err(self, stream: Any) -> None:
        for line in stream:
            self.err.append(line.rstrip("\n"))

    def wait_for(
        self, action: str, run: str | None = None, timeout: float = DEADLINE_S
    ) -> dict[str, Any]:
        """The next (or an already seen) line with this action (and run id or job prefix)."""

        def matches(e: dict[str, Any]) -> bool:
            return e["action"] == action and (run is None or e["run"].startswith(run))

        for e in self.seen:
            if matches(e):
                return e
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(
                    f"no '{action} {run or ''}' within {timeout}s; saw {self.seen}; err {self.err}"
                )
            try:
                e = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(e)
            if matches(e):
                return e

    def wait_err(self, pred: Callable[[str], bool], timeout: float = DEADLINE_S) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.err):
                if pred(line):
                    return line
            time.sleep(0.02)
        pytest.fail(f"no such line on stderr within {timeout}s: {self.err}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = DEADLINE_S) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=DEADLINE_S)
        for t in self.readers:
            t.join(timeout=DEADLINE_S)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def watching() -> Iterator[Callable[..., Watching]]:
    started: list[Watching] = []

    def start(repo: Path, *extra: str) -> Watching:
        w = Watching(repo, *extra)
        started.append(w)
        w.wait_for("watch")
        return w

    yield start
    for w in started:
        w.close()


def run_file(repo: Path, run_id: str) -> dict[str, Any]:
    found = list((repo / "state").glob(f"*/*/{run_id}.json"))
    assert len(found) == 1, found
    data: dict[str, Any] = json.loads(found[0].read_text())
    return data


def test_trigger_run_dependant_chain(tmp_path: Path, watching: Callable[..., Watching]) -> None:
    repo = write_repo(tmp_path, {"schedule/chain.yaml": CHAIN})
    w = watching(repo)
    run_a = trigger(repo, "a")
    w.wait_for("dispatch", run_a)
    w.wait_for("succeed", run_a)
    created_b = w.wait_for("create", "b@")
    assert run_a in created_b["detail"]
    w.wait_for("dispatch", "b@")
    w.wait_for("succeed", "b@")
    w.wait_for("dispatch", "c@")
    done_c = w.wait_for("succeed", "c@")
    assert run_file(repo, done_c["run"])["state"] == "succeeded"
    assert run_file(repo, created_b["run"])["state"] == "succeeded"
    log = (repo / "state").glob(f"*/c/{done_c['run']}.log")
    assert [p.read_text() for p in log] == ["c\n"]
    assert w.stop() == 0
    assert w.err == []


def test_job_added_and_edited_while_watching(
    tmp_path: Path, watching: Callable[..., Watching]
) -> None:
    repo = write_repo(tmp_path, {"schedule/a.yaml": EXTERNAL.format(a="echo one")})
    w = watching(repo)
    # An editor's save: write a temp file, rename it over the original.
    tmp = repo / "schedule" / ".a.yaml.swp"
    tmp.write_text(EXTERNAL.format(a="echo two"))
    tmp.rename(repo / "schedule" / "a.yaml")
    (repo / "schedule" / "new.yaml").write_text(
        "jobs:\n  added:\n    command: echo added\n    trigger: external\n"
    )
    reload_ = w.wait_for("reload")
    assert reload_["detail"] == "2 jobs"
    run_a = trigger(repo, "a")
    w.wait_for("succeed", run_a)
    assert (repo / "state").glob(f"*/a/{run_a}.log").__next__().read_text() == "two\n"
    run_added = trigger(repo, "added")
    w.wait_for("succeed", run_added)
    assert w.stop() == 0


def test_invalid_edit_is_reported_and_survived(
    tmp_path: Path, watching: Callable[..., Watching]
) -> None:
    after = "  b:\n    command: echo b\n    trigger: {after: a}\n"
    repo = write_repo(tmp_path, {"schedule/a.yaml": EXTERNAL.format(a="sleep 1") + after})
    w = watching(repo)
    run_a = trigger(repo, "a")
    w.wait_for("dispatch", run_a)
    broken = EXTERNAL.format(a="sleep 1") + "    poll: soon\n" + after
    (repo / "schedule" / "a.yaml").write_text(broken)
    located = w.wait_err(lambda line: line.startswith("schedule/a.yaml:5:11: jobs.a.poll:"))
    assert "is not valid" in located
    w.wait_err(lambda line: "keeping the last valid one (2 jobs)" in line)
    assert talon_cli(repo, "trigger", "a").returncode == 1  # commands refuse the broken files
    # The watcher goes on under the last valid configuration: a ends, b is created and runs.
    w.wait_for("succeed", run_a)
    w.wait_for("succeed", "b@")
    fixed = after + "  c:\n    command: echo c\n    trigger: external\n"
    (repo / "schedule" / "a.yaml").write_text(EXTERNAL.format(a="echo a") + fixed)
    assert w.wait_for("reload")["detail"] == "3 jobs"
    run_c = trigger(repo, "c")
    w.wait_for("succeed", run_c)
    assert w.proc.poll() is None
    assert w.stop() == 0


def test_damaged_run_file_is_survived(tmp_path: Path, watching: Callable[..., Watching]) -> None:
    repo = write_repo(
        tmp_path,
        {
            "schedule/a.yaml": EXTERNAL.format(a="sleep 1")
            + "  b:\n    command: echo b\n    trigger: external\n"
        },
    )
    w = watching(repo)
    run_a = trigger(repo, "a")
    w.wait_for("dispatch", run_a)
    path = next((repo / "state").glob(f"*/a/{run_a}.json"))
    path.write_text("{ not json")
    w.wait_err(lambda line: "unreadable run file" in line and run_a in line)
    assert list(path.parent.glob(f"{run_a}.json.corrupt-*"))
    run_b = trigger(repo, "b")
    w.wait_for("succeed", run_b)
    assert w.stop() == 0


@pytest.mark.slow
def test_cron_job_fires_on_the_minute(tmp_path: Path, watching: Callable[..., Watching]) -> None:
    repo = write_repo(
        tmp_path,
        {"schedule/m.yaml": "jobs:\n  m:\n    command: date +%s.%N\n    trigger: '* * * * *'\n"},
    )
    w = watching(repo)
    created = w.wait_for("create", "m@", timeout=120 + DEADLINE_S)
    instant = datetime.strptime(created["run"], "m@%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert instant.second == 0
    minute = instant.timestamp()
    done = w.wait_for("succeed", created["run"])
    started = float(next((repo / "state").glob(f"*/m/{done['run']}.log")).read_text())
    assert 0 <= started - minute < 1.0, f"fired {started - minute:.3f}s after the minute"
    assert w.stop() == 0


def test_sigterm_leaves_the_job_running_and_a_new_watcher_collects_it(
    tmp_path: Path, watching: Callable[..., Watching]
) -> None:
    repo = write_repo(tmp_path, {"schedule/a.yaml": EXTERNAL.format(a="sleep 3")})
    w = watching(repo)
    run_a = trigger(repo, "a")
    w.wait_for("dispatch", run_a)
    assert w.stop(signal.SIGTERM) == 0
    assert w.wait_for("stop")["detail"].startswith("SIGTERM")
    record = run_file(repo, run_a)
    assert record["state"] == "running"
    pid = record["executor"]["handle"]["pid"]
    assert Path(f"/proc/{pid}").exists(), "the run must outlive the watcher"
    again = watching(repo)
    done = again.wait_for("succeed", run_a)
    assert done["job"] == "a"
    assert run_file(repo, run_a)["state"] == "succeeded"
    assert again.stop(signal.SIGINT) == 0


def test_two_watchers_on_one_repository(tmp_path: Path, watching: Callable[..., Watching]) -> None:
    repo = write_repo(tmp_path, {"schedule/a.yaml": EXTERNAL.format(a="echo a")})
    first = watching(repo)
    second = talon_cli(repo, "watch")
    assert second.returncode == 1
    root = repo.resolve()
    assert (
        f"talon watch: another watcher is running on {root} (pid {first.proc.pid})" in second.stderr
    )
    assert first.proc.poll() is None
    assert first.stop() == 0


def test_idle_watcher_sleeps(tmp_path: Path, watching: Callable[..., Watching]) -> None:
    repo = write_repo(tmp_path, {"schedule/a.yaml": CHAIN})
    w = watching(repo)
    run_a = trigger(repo, "a")
    w.wait_for("succeed", "c@")
    assert run_a
    time.sleep(0.2)  # the echoes of its own writes arrive and are recognised

    def cpu() -> float:
        fields = Path(f"/proc/{w.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = cpu()
    time.sleep(1.0)
    assert cpu() - before < 0.05
    assert w.stop() == 0


def all_succeeded(repo: Path, count: int) -> list[dict[str, Any]]:
    """Every run file, once there are `count` and all have succeeded (within the deadline)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        records = [json.loads(p.read_text()) for p in (repo / "state").glob("*/*/*.json")]
        if len(records) == count and all(r["state"] == "succeeded" for r in records):
            return records
        assert time.monotonic() < deadline, [(r["id"], r["state"]) for r in records]
        time.sleep(0.05)


def test_reconcile_from_cron_alongside(tmp_path: Path, watching: Callable[..., Watching]) -> None:
    repo = write_repo(tmp_path, {"schedule/chain.yaml": CHAIN})
    w = watching(repo)
    cmd = [sys.executable, "-m", "talon", "-C", str(repo), "reconcile", "--wait"]
    for round_ in range(1, 4):
        trigger(repo, "a")
        others = [
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=clean_env()) for _ in range(3)
        ]
        assert [p.wait(timeout=60) for p in others] == [0, 0, 0]
        records = all_succeeded(repo, 3 * round_)
        time.sleep(1.01 - time.time() % 1)  # `{after: a}` run ids are per second of a's trigger
    for r in records:
        started = [h for h in r["history"] if h["state"] == "running"]
        assert len(started) == 1, r["id"]
    assert w.proc.poll() is None
    assert w.stop() == 0


def test_run_changed_by_someone_else_wakes_the_watcher(
    tmp_path: Path, watching: Callable[..., Watching]
) -> None:
    """`talon cancel` skips a blocked run; its dependant, blocked with a poll of an hour, is
    settled at once: the watcher saw the file change and told the pass which job changed."""
    jobs = (
        "jobs:\n"
        "  never:\n    command: 'true'\n    trigger: external\n"
        "  a:\n    command: 'true'\n    trigger: external\n    poll: 1h\n"
        "    constraints: {after: [never]}\n"
        "  b:\n    command: 'true'\n    trigger: external\n    poll: 1h\n"
        "    constraints: {after: [a]}\n"
    )
    repo = write_repo(tmp_path, {"schedule/s.yaml": jobs})
    w = watching(repo)
    run_a = trigger(repo, "a")
    w.wait_for("block", run_a)
    run_b = trigger(repo, "b")
    w.wait_for("block", run_b)
    done = talon_cli(repo, "cancel", run_a)
    assert done.returncode == 0, done.stderr
    skipped = w.wait_for("skip", run_b, timeout=5)
    assert "a" in skipped["detail"]
    assert w.stop() == 0


def test_watchdogs_inactive_emitter_error_is_dropped_and_no_other(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A watch replaced or stopped while its emitter thread waits for an event made watchdog
    log an error, which reached `talon watch`'s stderr (seen flaking a CI run); nothing is
    lost then. Other errors still show."""
    import logging

    from talon.watch import _quiet_inactive_emitters

    _quiet_inactive_emitters()
    _quiet_inactive_emitters()  # (once is enough: no second filter)
    log = logging.getLogger("watchdog.observers.inotify")
    assert len(log.filters) == 1
    with caplog.at_level(logging.ERROR):
        log.error("InotifyEmitter.queue_events() called when the thread is inactive")
        log.error("something else went wrong")
    assert [r.getMessage() for r in caplog.records] == ["something else went wrong"]
