"""Crash safety: a reconcile killed (SIGKILL) at each point of a pass, then clean passes.

Judged from what the jobs themselves logged as well as from the run files: every trigger
becomes exactly one run, no run is dispatched twice, nothing is left running, every file
stays readable.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from talon.faults import POINTS
from talon.store import FileStore
from tests.conftest import run_talon as talon
from tests.conftest import write_repo

JOBS = """
jobs:
  a:
    command: echo "$TALON_RUN_ID" >> "$TALON_REPO/ran.log"
    trigger: "0 6 * * *"
  b:
    command: echo "$TALON_RUN_ID" >> "$TALON_REPO/ran.log"
    trigger: {after: a}
  c:
    command: echo "$TALON_RUN_ID" >> "$TALON_REPO/ran.log"
    trigger: "0 6 * * *"
    constraints: {after: [a]}
"""


def settle(root: Path, now: str) -> None:
    for _ in range(5):
        result = talon(root, "reconcile", "--wait", "--now", now)
        assert result.returncode in (0, 1), result.stderr
        if "Traceback" in result.stderr:
            pytest.fail(result.stderr)


def all_runs(root: Path) -> dict[str, dict[str, object]]:
    store = FileStore(root / "state")
    out = {}
    for path in store.iter_run_files():
        run = store.read(path)  # raises on any unreadable file
        out[run.id] = json.loads(path.read_text())
    return out


# Where a point is reached: a `--wait` keeps a new blocked run's file back (its line in the
# index log records it), so only a single pass reaches the point after a run file's creation.
# A single pass leaves its runs to the next, so it reaches only the points before collecting.
KILLS = [("--wait", p) for p in POINTS if p != "create.after_file"] + [
    ("once", p)
    for p in (
        "create.after_journal",
        "create.after_file",
        "dispatch.after_intent",
        "dispatch.after_submit",
        "pass.before_book",
    )
]


def test_every_point_is_killed_at() -> None:
    assert {p for _, p in KILLS} == set(POINTS)


@pytest.mark.parametrize(("mode", "point"), KILLS)
def test_killed_at_each_point(tmp_path: Path, mode: str, point: str) -> None:
    root = write_repo(tmp_path, {"schedule/jobs.yaml": JOBS})
    assert talon(root, "reconcile", "--now", "2026-11-27T00:00:00Z").returncode == 0
    wait = ["--wait"] if mode == "--wait" else []
    crashed = talon(root, "reconcile", *wait, "--now", "2026-11-27T06:00:30Z", crash_at=point)
    assert crashed.returncode == -signal.SIGKILL, (point, crashed.stdout, crashed.stderr)
    settle(root, "2026-11-27T06:02:00Z")
    runs = all_runs(root)
    # Exactly one run per trigger.
    assert sorted(k for k in runs if not k.startswith("b@")) == [
        "a@20261127T060000Z",
        "c@20261127T060000Z",
    ]
    # Nothing left in flight.
    assert all(r["state"] in ("succeeded", "failed", "skipped") for r in runs.values()), runs
    # No run executed twice, judged from the jobs' own log.
    ran = (
        Counter((root / "ran.log").read_text().split())
        if (root / "ran.log").exists()
        else Counter()
    )
    assert all(n == 1 for n in ran.values()), ran
    a = runs["a@20261127T060000Z"]
    if point == "dispatch.after_submit":
        # Started but its handle never recorded: adopted if the executor can find it,
        # otherwise failed as lost — never started a second time.
        assert a["state"] == "succeeded" or a["reason"] == "lost", a
    else:
        assert a["state"] == "succeeded", a
        assert runs["c@20261127T060000Z"]["state"] == "succeeded"
        assert [k for k in runs if k.startswith("b@")] == ["b@20261127T060000Z.after.a"]
        assert set(ran) == set(runs)


def test_random_kills_then_clean_pass(tmp_path: Path) -> None:
    """Many passes killed at random instants; a clean pass then settles everything."""
    import random
    import time

    jobs = "jobs:\n" + "".join(
        f'  j{i}:\n    command: echo "$TALON_RUN_ID" >> "$TALON_REPO/ran.log"\n'
        f"    trigger: '*/10 * * * *'\n    catchup: all\n"
        for i in range(6)
    )
    root = write_repo(tmp_path, {"schedule/jobs.yaml": jobs})
    assert talon(root, "reconcile", "--now", "2026-11-27T00:00:00Z").returncode == 0
    rng = random.Random(7)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALON_")}
    for i in range(12):
        now = f"2026-11-27T{i // 6:02d}:{(i % 6) * 10 + 1:02d}:00Z"
        proc = subprocess.Popen(
            [sys.executable, "-m", "talon", "-C", str(root), "reconcile", "--wait", "--now", now],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    settle(root, "2026-11-27T02:00:30Z")
    runs = all_runs(root)
    expected = {
        f"j{i}@20261127T{h:02d}{m:02d}00Z"
        for i in range(6)
        for h in (0, 1)
        for m in range(0, 60, 10)
    }
    # (00:00 fires at the first pass: the window of a job first seen then includes it.)
    expected |= {f"j{i}@20261127T020000Z" for i in range(6)}
    assert set(runs) == expected
    assert all(r["state"] in ("succeeded", "failed") for r in runs.values())
    lost = [r for r in runs.values() if r["state"] == "failed"]
    assert all(r["reason"] == "lost" for r in lost), lost
    ran = Counter((root / "ran.log").read_text().split())
    assert all(n == 1 for n in ran.values()), ran
    assert {k for k, r in runs.items() if r["state"] == "succeeded"} <= set(ran)


MANY = "jobs:\n" + "".join(
    f"  j{i}:\n"
    f'    command: echo "$TALON_RUN_ID" >> "$TALON_REPO/ran.log"\n'
    f'    trigger: "0 6 * * *"\n'
    for i in range(6)
)


@pytest.mark.parametrize("mode", ["--wait", "once"])
@pytest.mark.parametrize("point", ["dispatch.after_intent:3", "dispatch.after_submit:3"])
def test_killed_in_the_middle_of_a_batch_of_starts(tmp_path: Path, mode: str, point: str) -> None:
    """Six local runs due at once start as they are marked (through the spawner threads): a
    kill after two of them leaves started runs, marked ones and unmarked ones. Every run must
    still run exactly once, judged from the jobs' own log."""
    root = write_repo(tmp_path, {"schedule/jobs.yaml": MANY})
    assert talon(root, "reconcile", "--now", "2026-11-27T00:00:00Z").returncode == 0
    wait = ["--wait"] if mode == "--wait" else []
    crashed = talon(root, "reconcile", *wait, "--now", "2026-11-27T06:00:30Z", crash_at=point)
    assert crashed.returncode == -signal.SIGKILL, (crashed.stdout, crashed.stderr)
    assert crashed.stdout.count("dispatch ") == 0, "killed before the pass reported anything"
    # (The spawner threads start what they were handed in the background: how many of those
    # began before the kill varies, but never one not yet handed over, and at least those
    # whose start was recorded.)
    time.sleep(0.5)
    log = root / "ran.log"
    began = len(log.read_text().split()) if log.exists() else 0
    if point.startswith("dispatch.after_intent"):
        assert began <= 2, "only the two runs handed over before the third intent"
    else:
        assert began >= 3, "the third start was recorded, and the two before it"
    settle(root, "2026-11-27T06:02:00Z")
    runs = all_runs(root)
    assert sorted(runs) == [f"j{i}@20261127T060000Z" for i in range(6)]
    assert all(r["state"] == "succeeded" for r in runs.values()), runs
    ran = Counter((root / "ran.log").read_text().split())
    assert ran == Counter(runs.keys()), ran


def test_lockfile_mode_reclaims_a_killed_holders_marker(tmp_path: Path) -> None:
    """On NFS-safe locking, a pass killed while holding the pass lock leaves its marker; the
    next pass on the same host sees its holder is dead and goes on at once."""
    import time

    config = "timezone: UTC\nstate: {type: files, path: state, lock_mode: lockfile}\n"
    root = write_repo(tmp_path, {"talon.yaml": config, "schedule/jobs.yaml": JOBS})
    assert talon(root, "reconcile", "--now", "2026-11-27T00:00:00Z").returncode == 0
    crashed = talon(
        root, "reconcile", "--now", "2026-11-27T06:00:30Z", crash_at="dispatch.after_intent"
    )
    assert crashed.returncode == -signal.SIGKILL
    assert (root / "state/.talon/locks/@pass.lock").exists(), "the killed holder's marker"
    t0 = time.monotonic()
    settle(root, "2026-11-27T06:02:00Z")
    assert time.monotonic() - t0 < 30, "the marker was reclaimed, not waited out"
    runs = all_runs(root)
    assert runs["a@20261127T060000Z"]["state"] == "succeeded"


def test_fsck_repair_after_a_killed_pass_runs_nothing_twice(tmp_path: Path) -> None:
    """A pass killed after starting a run whose file it had not written yet; `fsck --repair`
    then checkpoints the index: the run must still be recovered (adopted), not fired again."""
    root = write_repo(tmp_path, {"schedule/jobs.yaml": JOBS})
    assert talon(root, "reconcile", "--now", "2026-11-27T00:00:00Z").returncode == 0
    crashed = talon(
        root, "reconcile", "--now", "2026-11-27T06:00:30Z", crash_at="dispatch.after_submit"
    )
    assert crashed.returncode == -signal.SIGKILL
    repaired = talon(root, "fsck", "--repair", "--now", "2026-11-27T06:00:40Z")
    assert repaired.returncode == 0, repaired.stderr
    settle(root, "2026-11-27T06:02:00Z")
    ran = Counter((root / "ran.log").read_text().split())
    assert all(n == 1 for n in ran.values()), ran
    runs = all_runs(root)
    assert runs["a@20261127T060000Z"]["state"] == "succeeded"


def _slow_starts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every start through the spawner threads take 0.3 s; returns the pids started, each
    appended before its start is marked done."""
    from talon.executors.spawning import Spawner

    spawner = Spawner.available()
    assert spawner is not None
    slow_one = spawner._one
    spawned: list[int] = []

    def slow(order: Any) -> tuple[int, int | None, int]:
        time.sleep(0.3)
        done = slow_one(order)
        spawned.append(done[0])
        return done

    monkeypatch.setattr(spawner, "_one", slow)
    return spawned


def _fail_call(
    monkeypatch: pytest.MonkeyPatch, name: str, nth: int, before: Callable[..., Any] | None = None
) -> None:
    """Dispatching.`name` raises OSError(ENOSPC) on its `nth` call (after `before(*args)`)."""
    from talon.pass_dispatch import Dispatching

    real = getattr(Dispatching, name)
    calls = [0]

    def failing(self: Any, *args: Any) -> Any:
        calls[0] += 1
        if calls[0] == nth:
            if before is not None:
                before(*args)
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return real(self, *args)

    monkeypatch.setattr(Dispatching, name, failing)


ONE_AT_A_TIME = MANY.replace(
    'trigger: "0 6 * * *"\n', 'trigger: "0 6 * * *"\n    constraints: {max_running: 1}\n'
)


@pytest.mark.parametrize(
    ("jobs", "failing", "nth", "done"),
    [
        (MANY, "_mark", 4, 3),  # while the batch is marked, three handed over
        (MANY, "_submitted", 1, 6),  # while the first start is recorded, all six handed over
        (ONE_AT_A_TIME, "_prepare", 4, 3),  # max_running: started after the marking
    ],
)
def test_a_pass_that_fails_in_the_middle_of_a_batch_starts_nothing_after_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    jobs: str,
    failing: str,
    nth: int,
    done: int,
) -> None:
    """An exception in the middle of a batch of starts (a full disk while a run is marked,
    started or recorded) leaves runs handed over to the spawner threads. The pass waits for
    those starts before it fails, so that nothing begins once it is over (`talon watch` goes
    on to its next pass, which must find them to adopt them); then every run runs exactly
    once. Starts are made slow so that they are still under way when the exception comes."""
    from talon.cli import main

    root = write_repo(tmp_path, {"schedule/jobs.yaml": jobs})
    assert talon(root, "reconcile", "--now", "2026-11-27T00:00:00Z").returncode == 0
    spawned = _slow_starts(monkeypatch)
    # (_submitted's first call records a start: let it be over first, as it would be.)
    _fail_call(monkeypatch, failing, nth, (lambda _start, result: result()) if nth == 1 else None)
    monkeypatch.chdir(root)
    with pytest.raises(OSError, match="injected"):
        main(["reconcile", "--now", "2026-11-27T06:00:30Z"])
    assert len(spawned) == done, "the starts handed over were done before the pass failed"
    monkeypatch.undo()
    # The next pass as `talon watch` makes it, past the grace a start is given to show.
    monkeypatch.chdir(root)
    main(["reconcile", "--now", "2026-11-27T06:00:36Z"])
    settle(root, "2026-11-27T06:02:00Z")
    runs = all_runs(root)
    assert sorted(runs) == [f"j{i}@20261127T060000Z" for i in range(6)]
    assert all(r["state"] == "succeeded" for r in runs.values()), runs
    assert Counter((root / "ran.log").read_text().split()) == Counter(runs.keys())
