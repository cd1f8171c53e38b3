"""`talon validate`: every problem in every file, one located line each; writes nothing."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from talon.cli import EXIT_FAILED, EXIT_OK, UsageError, find_repo
from talon.discover import CONFIG_FILE, find_root
from talon.output import emit_json
from talon.problems import Problem
from talon.spec import load_spec


def validate(root: Path) -> list[Problem]:
    spec, problems = load_spec(root)
    if spec is not None:
        problems = sorted([*problems, *_plugin_problems(root, spec.config.plugins)])
    return problems


def _plugin_problems(root: Path, plugins: Mapping[str, str]) -> list[Problem]:
    """Plugin constraints that cannot be imported: found here, not by the first pass that
    checks a run (which would leave the run blocked on the error). Importing runs the
    module's code, as every pass does."""
    if not plugins:
        return []
    from talon.plugins import load_constraint_plugins
    from talon.yamlfile import YamlError, load_file

    _, errors = load_constraint_plugins(plugins, root)
    if not errors:
        return []
    try:
        loaded = load_file(root / CONFIG_FILE)
    except (OSError, YamlError):
        loaded = None
    out = []
    for name, error in errors:
        where = ("plugins", "constraints", name)
        line, col = loaded.position(where, value=True) if loaded is not None else (0, 0)
        out.append(Problem(CONFIG_FILE, line, col, error))
    return out


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    if args.directory is not None and not Path(args.directory).is_dir():
        raise UsageError(f"-C {args.directory}: no such directory")
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
