"""`talon watch [--full-pass DURATION] [--json]`: reconcile continuously (see talon/watch.py)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from talon.cli import UsageError
from talon.repo import open_repo


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    from talon.durations import parse_duration

    try:
        full_pass_s = parse_duration(args.full_pass)
    except ValueError as exc:
        raise UsageError(f"--full-pass: {exc}") from None
    if full_pass_s <= 0:
        raise UsageError("--full-pass: must be more than 0s")
    repo = open_repo(args.directory, environ)
    from talon.watch import watch

    return watch(repo, environ, full_pass_s=full_pass_s, json_lines=bool(args.json))
