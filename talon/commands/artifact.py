"""`talon artifact add URL [--name N]`: record an artifact of the current run."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from talon.cli import EXIT_FAILED, EXIT_OK, UsageError, parse_now
from talon.commands.progress import locate_run
from talon.markers import format_marker
from talon.report import RunEnded, record_artifact, valid_url


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    if not valid_url(args.url):
        raise UsageError(
            f"{args.url!r} is not a URL: give one with its scheme, e.g. https://host/report.pdf"
            " or file:///data/out.csv"
        )
    path = locate_run(args.run, args.directory, environ)
    if path is None:
        payload = {"url": args.url, **({"name": args.name} if args.name else {})}
        print(format_marker("artifact", payload), flush=True)
        return EXIT_OK
    try:
        record_artifact(path, args.url, args.name, parse_now(args.now))
    except RunEnded as exc:
        print(f"talon artifact: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
