"""`talon backfill JOB --from KEY --to KEY`: a run for each period in the range.

Ids derive from each period's start, so running the same backfill twice creates nothing new.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from talon.cli import EXIT_OK, UsageError, parse_now
from talon.creating import create_run
from talon.periods import Period, parse_period_key
from talon.plan import new_run
from talon.repo import open_repo
from talon.revision import git_revision
from talon.runs import iso
from talon.store import run_id_for

MAX_PERIODS = 10_000


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    repo = open_repo(args.directory, environ)
    job = repo.job(args.job)
    now = parse_now(args.now)
    tz = ZoneInfo(job.timezone)
    try:
        first = parse_period_key(args.from_key, tz, job.period_type)
        last = parse_period_key(args.to_key, tz, job.period_type)
    except ValueError as exc:
        raise UsageError(f"{exc} (job {job.name} has {job.period_type.value} periods)") from None
    if last.start < first.start:
        raise UsageError(f"--to {args.to_key} is before --from {args.from_key}")
    periods: list[Period] = [first]
    while periods[-1].start < last.start:
        if len(periods) >= MAX_PERIODS:
            raise UsageError(f"more than {MAX_PERIODS} periods in the range")
        periods.append(periods[-1].next())
    revision = git_revision(repo.root)
    results: list[dict[str, object]] = []
    for period in periods:
        run_ = new_run(
            job,
            run_id=run_id_for(job.name, period.start, suffix=".backfill"),
            period=period,
            trigger={"type": "backfill", "at": iso(now)},
            now=now,
            revision=revision,
        )
        created = create_run(repo.store, run_)
        if args.json:
            results.append({"run": run_.id, "period": period.key, "created": created})
        elif created:
            print(run_.id)
        else:
            print(f"{run_.id} exists already", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_OK
