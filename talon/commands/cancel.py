"""`talon cancel RUN`: skip a run, and stop it if it is running."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from talon import bookkeeping
from talon.cli import EXIT_FAILED, EXIT_OK, UsageError, parse_now
from talon.repo import open_repo
from talon.runs import Run, State, iso
from talon.store import FileStore, StoreError


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    repo = open_repo(args.directory, environ, partial=True)
    now = parse_now(args.now)
    try:
        path = repo.store.find(args.run)
    except StoreError as exc:
        restored = _from_index_log(repo.store, args.run)
        if restored is None:
            raise UsageError(str(exc)) from None
        path = restored
    # How to stop it, worked out before the run is marked: with a configuration that cannot
    # give its executor (one invalid file), a run marked skipped would never be stopped, by
    # this command or by any pass after it (a skipped run is no pass's business).
    stopper: Any = None
    try:
        current = repo.store.read(path)
    except (OSError, StoreError):
        current = None
    if current is not None and current.state is State.RUNNING:
        from talon.passes import Pass

        try:
            stopper = Pass(repo.spec, repo.store, now).submission_for(current)
        except Exception as exc:
            print(
                f"talon cancel: cannot stop {current.id} with this configuration ({exc}); "
                "nothing was changed",
                file=sys.stderr,
            )
            return EXIT_FAILED
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
            f"talon cancel: {old.id} is {old.state.value} already; nothing to cancel",
            file=sys.stderr,
        )
        if args.json:  # (a script reads the outcome from stdout either way)
            print(json.dumps({"run": old.id, "state": old.state.value, "was": old.state.value}))
        return EXIT_FAILED
    handle = (old.executor or {}).get("handle")
    if old.state is State.RUNNING and handle is None:
        handle = _logged_handle(repo.store, old)
    if old.state is State.RUNNING and handle is not None:
        found = stopper
        if found is None:  # (running only since the look above)
            from talon.passes import Pass

            found = Pass(repo.spec, repo.store, now).submission_for(new)
        if found is not None:
            sub, ex = found
            try:
                ex.cancel(handle, sub)
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


def _from_index_log(store: FileStore, run_id: str) -> Path | None:
    """A run whose file is not written yet (its pass keeps it for later, or died): written
    from its copy in the index log, so that it can be cancelled like any other."""
    from talon.passes import PASS_LOCK

    if "@" not in run_id or "/" in run_id:
        return None
    with store.locked(PASS_LOCK, timeout=60):
        logged = bookkeeping.logged_run(store, run_id)
        if logged is None:
            return None
        path = store.path_at(logged[0])
        store.create(logged[1])  # False: its pass wrote it meanwhile, which is as good
    return path if path.is_file() else None


def _logged_handle(store: FileStore, old: Run) -> Any:
    """The handle of a run started by a `reconcile --wait` that has not written it to the file
    yet: it is in the index log. Read under the pass lock, which that pass holds from the
    intent to the handle's line, so a start under way is waited for, not missed."""
    from talon.passes import PASS_LOCK

    with store.locked(PASS_LOCK, timeout=60):
        logged = bookkeeping.logged_run(store, old.id)
    if logged is None or logged[1].dispatch != old.dispatch:
        return None
    return (logged[1].executor or {}).get("handle")
