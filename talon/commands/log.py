"""`talon log RUN`: the run's combined output."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping

from talon.bookkeeping import find_run
from talon.cli import EXIT_FAILED, EXIT_OK, UsageError
from talon.repo import open_repo_store
from talon.store import RUN_SUFFIX, StoreError


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    store = open_repo_store(args.directory, environ)
    try:
        path = store.find(args.run)
    except StoreError:
        try:
            path = find_run(store, args.run)[0]  # a run whose file waits (see find_run)
        except StoreError as exc:
            raise UsageError(str(exc)) from None
    log = path.with_name(path.name[: -len(RUN_SUFFIX)] + ".log")
    try:
        with open(log, "rb") as fh:
            shutil.copyfileobj(fh, sys.stdout.buffer)
    except FileNotFoundError:
        print(f"talon log: no output recorded for {args.run} (expected {log})", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.flush()
    return EXIT_OK
