"""`talon status [--period KEY] [--job NAME]`: runs of the current periods."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime

from talon import bookkeeping
from talon.cli import EXIT_FAILED, EXIT_OK, UsageError, parse_now
from talon.durations import format_duration
from talon.output import emit_json, table
from talon.plan import period_for
from talon.progress import describe, effective, expected_seconds
from talon.repo import Repo, open_repo
from talon.runs import Run


def gather(
    repo: Repo,
    now: datetime,
    period: str | None,
    job_name: str | None,
    book: bookkeeping.Book,
    tell: Callable[[str], None],
) -> list[Run]:
    """The runs to list; `tell` hears of each damaged run file met (and moved aside)."""
    for problem in book.problems:  # (met rebuilding a missing index)
        tell(problem)
    runs: dict[str, Run] = {}
    # A given period lists every job with runs in it, also one gone from the schedule (its
    # run files are still the truth); the current periods are those of the scheduled jobs.
    recorded = _jobs_recorded_in(repo, period) if period else set()
    if job_name:
        names = [job_name if job_name in recorded else repo.job(job_name).name]
    else:
        names = sorted(set(repo.spec.jobs) | recorded)
    wanted = set()
    for name in names:
        job = repo.spec.jobs.get(name)
        key = (period or period_for(job, now).key) if job else period
        if key is None:
            continue
        wanted.add(f"{key}/{name}")
        for run in repo.store.runs_in(key, name, lambda exc: tell(str(exc))):
            runs[run.id] = run
    # Runs of those periods whose file a `reconcile --wait` keeps back: in the index log.
    for rel, text in book.unwritten.items():
        if rel.rsplit("/", 1)[0] in wanted:
            logged = bookkeeping.logged_copy(text)
            if logged is not None and logged.id not in runs:
                runs[logged.id] = logged
    if period is None:
        # Open runs of earlier periods matter too, and those whose file a pass keeps back.
        rels = [
            rel
            for rel in book.open
            if len(parts := rel.split("/")) == 3 and (job_name is None or parts[1] == job_name)
        ]
        for run in bookkeeping.read_open(repo.store, book, rels):
            if not run.state.terminal:
                runs[run.id] = run
    return sorted(runs.values(), key=lambda r: (r.job, r.created, r.id))


def _duration(seconds: object) -> str:
    if not isinstance(seconds, float):
        return ""
    # Negative when the run was started under one clock and finished or looked at under
    # another (`--now` in the future, hosts out of step): shown as it is, not hidden.
    return format_duration(seconds) if seconds >= 0 else f"-{format_duration(-seconds)}"


def _jobs_recorded_in(repo: Repo, period: str) -> set[str]:
    from talon.model import JOB_NAME_RE

    try:
        entries = os.scandir(repo.store.root / period)
    except (FileNotFoundError, NotADirectoryError):
        return set()
    with entries:
        return {e.name for e in entries if JOB_NAME_RE.match(e.name) and e.is_dir()}


def row(
    repo: Repo, run: Run, now: datetime, durations: Mapping[str, list[float]]
) -> dict[str, object]:
    job = repo.spec.jobs.get(run.job)
    expected = expected_seconds(
        job.expected_duration_s if job else None, durations.get(run.job, [])
    )
    progress = effective(run, now, expected)
    duration = None
    if run.started:
        end = datetime.fromisoformat(run.finished) if run.finished else now
        duration = (end - datetime.fromisoformat(run.started)).total_seconds()
    return {
        "job": run.job,
        "period": run.period_key,
        "run": run.id,
        "state": run.state.value,
        "progress": progress,
        "started": run.started,
        "duration": duration,  # seconds, as the SPEC's column; `duration_s` for scripts that
        "duration_s": duration,  # used it before `duration` was there
        "reason": run.reason,
        "artifacts": [dict(a) for a in run.artifacts],
        "_progress": describe(progress),
    }


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    repo = open_repo(args.directory, environ, readonly=True, partial=True)
    now = parse_now(args.now)
    if args.period is not None:
        from datetime import UTC

        from talon.periods import parse_period_key

        try:
            parse_period_key(args.period, UTC)  # (the shape only: each job has its own zone)
        except ValueError as exc:
            raise UsageError(f"--period: {exc}") from None
    damaged: list[str] = []
    book = bookkeeping.load(repo.store)
    runs = gather(repo, now, args.period, args.job, book, damaged.append)
    for problem in damaged:  # (moved aside by the read: reported, never silently)
        print(f"talon status: {problem}", file=sys.stderr)
    code = EXIT_FAILED if damaged else EXIT_OK
    durations = book.durations
    rows = [row(repo, r, now, durations) for r in runs]
    if args.json:
        emit_json([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        return code
    if not rows:
        print(
            f"no runs in period {args.period}" if args.period else "no runs in the current periods"
        )
        return code
    table(
        ["JOB", "PERIOD", "RUN", "STATE", "PROGRESS", "STARTED", "DURATION", "REASON"],
        [
            [
                r["job"],
                r["period"],
                r["run"],
                r["state"],
                r["_progress"],
                r["started"] or "",
                _duration(r["duration_s"]),
                r["reason"] or "",
            ]
            for r in rows
        ],
    )
    return code
