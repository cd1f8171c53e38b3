"""`talon progress --percent P | --item NAME=STATE [--total N]`: report from inside a job.

The run comes from `--run`, or `TALON_RUN_FILE`, or `TALON_RUN_ID` with `TALON_REPO`. Where
no run file is reachable (the job runs on another host), the report is printed as a marker
line, which Talon folds into the run file when it collects the run's output.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from talon.cli import EXIT_FAILED, EXIT_OK, UsageError, parse_now
from talon.markers import format_marker
from talon.report import ITEM_STATES, RunEnded, record_progress, valid_item_state


def _appears(path: Path, wait_s: float = 2.0) -> bool:
    """Whether the run file is here. A run that a pass started in a batch gets its file a
    moment after its process (see pass_dispatch.Start): on this host (its directory exists) a job
    reporting at once may be ahead of it, so wait a little rather than fall back to markers."""
    import time

    deadline = time.monotonic() + wait_s
    while not path.is_file():
        if not path.parent.is_dir() or time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def locate_run(
    run_ref: str | None, directory: str | None, environ: Mapping[str, str]
) -> Path | None:
    """The run file to report to, or None when it is not reachable from here."""
    if run_ref is None and environ.get("TALON_RUN_FILE"):
        path = Path(environ["TALON_RUN_FILE"])
        return path if _appears(path) else None
    ref = run_ref or environ.get("TALON_RUN_ID")
    if ref is None:
        raise UsageError(
            "no run: give --run RUN, or call this from a job (TALON_RUN_ID is not set)"
        )
    from talon.repo import open_repo_store
    from talon.store import StoreError

    try:
        return open_repo_store(directory, environ).find(ref)
    except (StoreError, UsageError):
        if run_ref is not None:
            raise
        return None


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    report: dict[str, Any]
    if args.percent is not None:
        if not 0 <= args.percent <= 100:
            raise UsageError("--percent must be between 0 and 100")
        report = {"kind": "percent", "percent": args.percent}
    else:
        items = {}
        for pair in args.item:
            name, sep, state = pair.partition("=")
            if not sep or not name or not valid_item_state(state):
                raise UsageError(
                    f"--item {pair!r}: expected NAME=STATE, with STATE a word such as "
                    f"{', '.join(ITEM_STATES)}"
                )
            items[name] = state
        report = {"kind": "items", "items": items}
        if args.total is not None:
            report["total"] = args.total
    path = locate_run(args.run, args.directory, environ)
    if path is None:
        print(format_marker("progress", report), flush=True)
        return EXIT_OK
    try:
        record_progress(path, report, parse_now(args.now))
    except RunEnded as exc:
        print(f"talon progress: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
