"""`talon plan [--until TIME]`: what reconcile would do now, or over a simulated span."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from datetime import datetime

from talon.cli import EXIT_OK, UsageError, parse_now
from talon.output import emit_json
from talon.plan import Decision
from talon.repo import Repo, open_repo
from talon.runs import Run, State


def simulate(
    repo: Repo, start: datetime, until: datetime | None
) -> list[tuple[datetime, Decision]]:
    """Dry-run passes at `start` and at every due instant up to `until`, writing nothing.

    A run the plan starts is assumed to succeed after its job's expected duration (the
    `expected_duration`, else the median of its past successes, else at once), so later
    steps show what its success would set off.
    """
    from talon.passes import Pass, PassView

    out: list[tuple[datetime, Decision]] = []
    view: PassView | None = None
    book = None
    now = start
    for _ in range(10_000):
        p = Pass(repo.spec, repo.store, now, dry_run=True)
        if view is not None and book is not None:
            p.book, p.view = book, view
            decisions = p.steps_on_loaded()
        else:
            decisions = p.run()
        view, book = p.view, p.book
        out.extend((now, d) for d in decisions)
        if until is None:
            break
        due = [c.next_due for c in (book.cursor(j) for j in repo.spec.jobs) if c and c.next_due]
        assert view is not None
        ends = [e for e in (p.simulated_end(r) for r in view.open()) if e is not None]
        # A run of no expected duration ends where it started: the next step is at the same
        # instant (while steps there still decide something), not at the next trigger.
        later = [d for d in due if d > now] + [
            e for e in ends if e > now or (e == now and decisions)
        ]
        later += [d for d in _deadlines(repo, view.open()) if d > now]
        if not later or min(later) > until:
            break
        now = min(later)
    return out


def _deadlines(repo: Repo, runs: Iterable[Run]) -> list[datetime]:
    """The instants just past the start_by deadlines of runs still waiting: a pass then fails
    them, so a step of the plan goes there too (a second past: the deadline itself passes)."""
    from datetime import timedelta

    from talon.constraints import start_by_deadline

    out = []
    for run in runs:
        job = repo.spec.jobs.get(run.job)
        if job is None or run.state not in (State.BLOCKED, State.READY):
            continue
        deadline = start_by_deadline(run, job)
        if deadline is not None:
            out.append(deadline + timedelta(seconds=1))
    return out


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    repo = open_repo(args.directory, environ, readonly=True)
    now = parse_now(args.now)
    until = parse_now(args.until, "--until") if args.until else None
    if until is not None and until < now:
        raise UsageError("--until is before --now")
    steps = simulate(repo, now, until)
    if args.json:
        emit_json([{"at": at.isoformat(), **d.as_json()} for at, d in steps])
    elif not steps:
        print("nothing to do")
    else:
        for at, d in steps:
            prefix = f"{at.isoformat(timespec='seconds')}  " if until is not None else ""
            print(f"{prefix}{d}")
    return EXIT_OK
