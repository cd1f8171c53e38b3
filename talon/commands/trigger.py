"""`talon trigger JOB [--period KEY] [--param K=V]`: an external trigger; prints the run id."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from talon.cli import EXIT_OK, UsageError, parse_now
from talon.creating import create_unique
from talon.periods import parse_period_key
from talon.plan import new_run, period_for
from talon.repo import open_repo
from talon.revision import git_revision
from talon.runs import iso
from talon.store import run_id_for


def parse_params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: expected K=V")
        out[key] = value
    return out


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    repo = open_repo(args.directory, environ)
    job = repo.job(args.job)
    now = parse_now(args.now)
    if args.period:
        try:
            period = parse_period_key(args.period, ZoneInfo(job.timezone), job.period_type)
        except ValueError as exc:
            raise UsageError(f"--period {args.period}: {exc}") from None
    else:
        period = period_for(job, now)
    run_ = new_run(
        job,
        # Its own suffix: a scheduled fire at the same second keeps its id (and its run).
        run_id=run_id_for(job.name, now, suffix=".ext"),
        period=period,
        trigger={"type": "external", "at": iso(now)},
        now=now,
        params=parse_params(args.param),
        revision=git_revision(repo.root),
    )
    created = create_unique(repo.store, run_)
    if args.json:
        print(
            json.dumps(
                {"run": created.id, "period": created.period_key, "state": created.state.value}
            )
        )
    else:
        print(created.id)
    return EXIT_OK
