"""`talon retry RUN`: a new attempt in the same period."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping

from talon import bookkeeping
from talon.cli import EXIT_FAILED, EXIT_OK, UsageError, parse_now
from talon.creating import create_unique
from talon.plan import next_attempt
from talon.repo import open_repo
from talon.store import StoreError


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    repo = open_repo(args.directory, environ)
    now = parse_now(args.now)
    try:
        old = repo.store.read(repo.store.find(args.run))
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    if not old.state.terminal:
        # A refusal of the run's state, not of the command line (as cancel of an ended run)
        print(
            f"talon retry: {old.id} is {old.state.value}; only a finished run can be retried",
            file=sys.stderr,
        )
        return EXIT_FAILED
    job = repo.job(old.job)
    existing = [
        *repo.store.runs_in(old.period_key, old.job),
        # An automatic retry a `reconcile --wait` created and keeps back: its number is taken.
        *bookkeeping.logged_runs(repo.store, f"{old.period_key}/{old.job}/").values(),
    ]
    created = create_unique(repo.store, next_attempt(job, old, now, existing, "retry"))
    if args.json:
        print(json.dumps({"run": created.id, "attempt": created.attempt, "previous": old.id}))
    else:
        print(created.id)
    return EXIT_OK
