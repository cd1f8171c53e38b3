"""`talon cancel RUN`: skip a run, and stop it if it is running."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping

from talon.cli import EXIT_FAILED, EXIT_OK, UsageError, parse_now
from talon.repo import open_repo
from talon.runs import Run, State, iso
from talon.store import StoreError


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    repo = open_repo(args.directory, environ)
    now = parse_now(args.now)
    try:
        path = repo.store.find(args.run)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    before: list[Run] = []

    def change(current: Run) -> Run | None:
        before.append(current)
        if current.state.terminal:
            return None
        return current.transition(State.SKIPPED, now, "cancelled by user", finished=iso(now))

    new = repo.store.update(path, change)
    old = before[-1]
    if old.state.terminal:
        print(
            f"talon cancel: {old.id} has already {old.state.value}; nothing to cancel",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if old.state is State.RUNNING and old.executor and old.executor.get("handle") is not None:
        from talon.passes import Pass

        p = Pass(repo.spec, repo.store, now)
        found = p.submission_for(new)
        if found is not None:
            sub, ex = found
            try:
                ex.cancel(old.executor["handle"], sub)
            except Exception as exc:
                print(
                    f"talon cancel: {new.id} is skipped, but stopping it failed: {exc}",
                    file=sys.stderr,
                )
    if args.json:
        print(json.dumps({"run": new.id, "state": new.state.value, "was": old.state.value}))
    else:
        print(f"{new.id}: skipped (cancelled by user)")
    return EXIT_OK
