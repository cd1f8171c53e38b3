"""Eight real reconcilers on one repository while jobs run.

Judged from what the jobs themselves logged, not only from Talon's files: exactly one run per
trigger, at most one start per run, and a resource's capacity never exceeded.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

from talon.store import FileStore
from tests.conftest import write_repo

PROCS = 8
TIMES = [f"2026-11-27T06:{m:02d}:30Z" for m in range(0, 30, 3)]

JOB = """  j{i}:
    command: >-
      echo "start $TALON_RUN_ID $(date +%s.%N)" >> "$TALON_REPO/events.log";
      sleep 0.15;
      echo "end $TALON_RUN_ID $(date +%s.%N)" >> "$TALON_REPO/events.log"
    trigger: "*/3 6 * * *"
    catchup: all
    resources: [{{select: pool/slots/*}}]
"""
POOL = "slots:\n  s1: {capacity: 1}\n  s2: {capacity: 1}\n"


def reconciler(root: Path, seed: int) -> subprocess.Popen[bytes]:
    """One process that reconciles the same instants as the others, in its own order."""
    times = TIMES[:]
    random.Random(seed).shuffle(times)
    script = "; ".join(
        f"{sys.executable} -m talon -C {root} reconcile --now {t} >/dev/null" for t in sorted(times)
    )
    script += f"; {sys.executable} -m talon -C {root} reconcile --wait --now {TIMES[-1]} >/dev/null"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALON_")}
    return subprocess.Popen(["/bin/sh", "-c", script], env=env)


def test_eight_reconcilers(tmp_path: Path) -> None:
    jobs = "jobs:\n" + "".join(JOB.format(i=i) for i in range(4))
    root = write_repo(tmp_path, {"schedule/jobs.yaml": jobs, "resources/pool.yaml": POOL})
    subprocess.run(
        [
            sys.executable,
            "-m",
            "talon",
            "-C",
            str(root),
            "reconcile",
            "--now",
            "2026-11-27T06:00:00Z",
        ],
        check=True,
    )
    procs = [reconciler(root, seed) for seed in range(PROCS)]
    for p in procs:
        assert p.wait(timeout=300) == 0
    # A last pass collects whatever finished after the others stopped.
    subprocess.run(
        [sys.executable, "-m", "talon", "-C", str(root), "reconcile", "--wait", "--now", TIMES[-1]],
        check=True,
    )
    store = FileStore(root / "state")
    runs = {p.name[:-5]: json.loads(p.read_text()) for p in store.iter_run_files()}
    # (06:00 fires at the first pass: the window of a job first seen then includes it.)
    expected = {f"j{i}@20261127T06{m:02d}00Z" for i in range(4) for m in range(0, 30, 3)}
    assert set(runs) == expected, "exactly one run per trigger"
    assert all(r["state"] == "succeeded" for r in runs.values()), [
        r for r in runs.values() if r["state"] != "succeeded"
    ]
    events = [line.split() for line in (root / "events.log").read_text().splitlines()]
    starts = Counter(run for kind, run, _ in events if kind == "start")
    assert set(starts) == expected
    assert max(starts.values()) == 1, "a run was started twice"
    # Capacity: two slots in the pool, so never more than two jobs between start and end.
    timeline = sorted((float(t), 1 if kind == "start" else -1) for kind, _, t in events)
    running = peak = 0
    for _, delta in timeline:
        running += delta
        peak = max(peak, running)
    assert peak <= 2, f"{peak} jobs held the two slots at once"
    for r in runs.values():
        assert len(r["resources"]) == 1 and r["resources"][0]["path"].startswith("pool/slots/")
