"""`talon validate`: every problem in every file, one located line each; writes nothing."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from talon.cli import EXIT_FAILED, EXIT_OK, find_repo
from talon.discover import CONFIG_FILE, find_root
from talon.output import emit_json
from talon.problems import Problem
from talon.spec import load_spec


def validate(root: Path) -> list[Problem]:
    _, problems = load_spec(root)
    return problems


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    if args.directory is not None and find_root(Path(args.directory)) is None:
        root = Path(args.directory)
        problems = [Problem(CONFIG_FILE, 0, 0, f"missing: no {CONFIG_FILE} in {root.resolve()}")]
    else:
        root = find_repo(args.directory, dict(environ))
        problems = validate(root)
    if args.json:
        emit_json({"ok": not problems, "problems": [p.as_json() for p in problems]})
    else:
        for p in problems:
            print(p)
    return EXIT_FAILED if problems else EXIT_OK
