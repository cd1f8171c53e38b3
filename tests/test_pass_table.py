"""The pass as a case table, in the style of Kubernetes' CronJob controller test.

Rows: {never ran, previous done, running, blocked} x {not due, due, past start_by} x each
constraint. Each case builds real run files, runs one pass at `now` (dry-run, so nothing is
started), and asserts how many runs were created and the state the new run reaches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from talon.passes import Pass
from talon.plan import Cursor, first_cursor
from talon.runs import Run, State
from talon.spec import load_spec
from talon.store import FileStore
from tests.conftest import write_repo

DAY = "2026-11-27"
TRIGGER = datetime(2026, 11, 27, 6, 30, tzinfo=UTC)
NOT_DUE = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
DUE = datetime(2026, 11, 27, 6, 31, tzinfo=UTC)
PAST_START_BY = datetime(2026, 11, 27, 9, 1, tzinfo=UTC)

CONSTRAINTS = {
    "none": "",
    "start_by": "      start_by: '09:00'\n",
    "once_per_period": "      once_per_period: true\n",
    "max_running": "      max_running: 1\n",
    "max_blocked": "      max_blocked: 1\n",
    "after": "      after: [upstream]\n",
}


def make_repo(tmp: Path, constraint: str) -> Path:
    body = CONSTRAINTS[constraint]
    job = "  job:\n    command: 'true'\n    trigger: '30 6 * * *'\n"
    if body:
        job += "    constraints:\n" + body
    return write_repo(
        tmp, {"schedule/jobs.yaml": "jobs:\n" + job + "  upstream:\n    command: 'true'\n"}
    )


def prior_run(history: str, store: FileStore, job_hash: str) -> None:
    """Put the job's history on disk: one earlier run today in the given state."""
    if history == "never ran":
        return
    state = {"previous done": State.SUCCEEDED, "running": State.RUNNING, "blocked": State.BLOCKED}[
        history
    ]
    earlier = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    run = Run(
        id="job@20261127T010000Z",
        job="job",
        state=state,
        period={
            "type": "daily",
            "key": DAY,
            "start": f"{DAY}T00:00:00+00:00",
            "end": "2026-11-28T00:00:00+00:00",
        },
        trigger={"type": "external", "at": earlier.isoformat()},
        created=earlier.isoformat(),
        started=earlier.isoformat() if state is State.RUNNING else None,
        executor={"name": "local", "type": "local", "handle": _alive(store)}
        if state is State.RUNNING
        else None,
        job_hash=job_hash,
    )
    store.ensure()
    assert store.create(run)
    from talon import bookkeeping

    bookkeeping.journal_open(store, f"{DAY}/job/{run.id}.json")


def _alive(store: FileStore) -> dict[str, object]:
    """A handle the local executor finds running: init's process stands in for the run (a
    plan asks the executor about real runs)."""
    from talon.executors.runner import boot_id, read_proc

    init = read_proc(1)
    assert init is not None
    return {
        "pid": 1,
        "start": init.start,
        "boot": boot_id(),
        "rc_file": str(store.root / ".talon" / "proc" / "none.rc"),
        "submitted": 0.0,
        "timeout_s": None,
        "key": None,
    }


@dataclass(frozen=True)
class Case:
    history: str
    timing: str
    constraint: str
    created: int
    state: State | None  # the new run's state after the pass, when one is created


def expected(history: str, timing: str, constraint: str) -> Case:
    if timing == "not due":
        return Case(history, timing, constraint, 0, None)
    state = State.RUNNING  # ready, and dispatched in the same pass
    if constraint == "start_by" and timing == "past start_by":
        state = State.FAILED
    elif constraint == "once_per_period" and history == "previous done":
        state = State.SKIPPED
    elif constraint == "max_running" and history == "running":
        state = State.BLOCKED
    elif constraint == "once_per_period" and history == "running":
        state = State.BLOCKED  # one at a time: the running one may be the period's success
    elif constraint == "max_blocked" and history == "blocked":
        state = State.SKIPPED
    elif constraint == "after":
        state = State.BLOCKED  # upstream has no run today
    return Case(history, timing, constraint, 1, state)


CASES = [
    expected(h, t, c)
    for h in ("never ran", "previous done", "running", "blocked")
    for t in ("not due", "due", "past start_by")
    for c in CONSTRAINTS
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.history}|{c.timing}|{c.constraint}")
def test_pass_table(case: Case, tmp_path: Path) -> None:
    root = make_repo(tmp_path, case.constraint)
    spec, problems = load_spec(root)
    assert spec is not None and not problems, problems
    store = FileStore(spec.config.state_path)
    job = spec.jobs["job"]
    prior_run(case.history, store, job.hash)
    now = {"not due": NOT_DUE, "due": DUE, "past start_by": PAST_START_BY}[case.timing]
    # The job was first seen at midnight, so 06:30 is its first fire.
    p = Pass(spec, store, now, dry_run=True)
    from talon import bookkeeping

    book = bookkeeping.load(store)
    start = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    cursor: Cursor = first_cursor(job, start)
    book.set_cursor("job", cursor)
    up = first_cursor(spec.jobs["upstream"], start)
    book.set_cursor("upstream", up)
    if case.history == "blocked":
        # Checked a moment ago and still waiting: its poll interval has not passed.
        book.checked["job@20261127T010000Z"] = now.timestamp()
    bookkeeping.save(store, book)
    decisions = p.run()
    created = [d for d in decisions if d.action == "create" and d.job == "job"]
    assert len(created) == case.created, decisions
    if case.state is not None:
        assert p.view is not None
        new = p.view.overlay[f"{DAY}/job/{created[0].run}.json"]
        assert new.state is case.state, (new.state, new.reason)
        if case.state is not State.RUNNING:
            assert new.reason, "every blocked, skipped and failed run says why"
        else:
            assert [d.action for d in decisions if d.job == "job"][-1] == "dispatch"
        if case.timing == "past start_by" and case.constraint == "start_by":
            assert new.reason == "start_by 09:00 passed at 09:01:00"
    # A pass never touches the earlier run's files except to settle them.
    assert len(list(store.iter_run_files())) == (0 if case.history == "never ran" else 1)


def test_real_pass_creates_exactly_once(tmp_path: Path) -> None:
    """Two passes at the same instant: the second finds the run already there."""
    root = make_repo(tmp_path, "after")
    spec, _ = load_spec(root)
    assert spec is not None
    store = FileStore(spec.config.state_path)
    Pass(spec, store, datetime(2026, 11, 27, 0, 0, tzinfo=UTC)).run()
    first = Pass(spec, store, DUE).run()
    second = Pass(spec, store, DUE).run()
    assert [d.action for d in first if d.job == "job"] == ["create", "block"]
    assert [d for d in second if d.action == "create"] == []
    files = list(store.iter_run_files())
    assert [f.name for f in files] == ["job@20261127T063000Z.json"]
    run = store.read(files[0])
    assert run.state is State.BLOCKED
    assert run.reason == "waiting for upstream to succeed in 2026-11-27"
    assert [c["verdict"] for c in run.checks] == ["block"]
    assert [h["state"] for h in run.history] == ["blocked"], "born checked: one write, one entry"
