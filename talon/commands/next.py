"""`talon next JOB [--count N]`: the next trigger instants, one a line.

A fire moved or merged by a DST rule is said on stderr (and in `--json`), so stdout stays
one instant a line for scripts.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from talon.cli import EXIT_OK, UsageError, parse_now
from talon.output import emit_json
from talon.repo import open_repo
from talon.triggers import Fire, is_timed, next_fire


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    repo = open_repo(args.directory, environ, readonly=True)
    job = repo.job(args.job)
    if args.count < 1:
        raise UsageError("--count must be at least 1")
    now = parse_now(args.now)
    tz = ZoneInfo(job.timezone)
    fires: list[Fire] = []
    if is_timed(job.triggers):
        from talon.plan import fires_from

        at = fires_from(job, now)
        while len(fires) < args.count:
            fire = next_fire(job.triggers, at, tz, job.dst)
            if fire is None:
                break
            fires.append(fire)
            at = fire.at
    if args.json:
        emit_json([{"at": f.at.isoformat(), "note": f.note} for f in fires])
        return EXIT_OK
    if not fires:
        kinds = (
            ", ".join(
                sorted({type(t).__name__.removesuffix("Trigger").lower() for t in job.triggers})
            )
            or "none"
        )
        print(f"talon next: {job.name} has no timed trigger (triggers: {kinds})", file=sys.stderr)
    for f in fires:
        print(f.at.isoformat())
        if f.note:
            print(f"talon next: {f.at.isoformat()}: {f.note}", file=sys.stderr)
    return EXIT_OK
