"""Opening a repository for a command: its configuration (refusing invalid files) and its store."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from talon.cli import UsageError, find_repo
from talon.model import Job, Spec
from talon.problems import ProblemsError
from talon.store import FileStore, open_store


@dataclass(frozen=True)
class Repo:
    root: Path
    spec: Spec
    store: FileStore

    def job(self, name: str) -> Job:
        job = self.spec.jobs.get(name)
        if job is None:
            import difflib

            hint = difflib.get_close_matches(name, list(self.spec.jobs), n=1)
            did = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise UsageError(f"no job '{name}' in the schedule{did}")
        return job


def open_repo(
    directory: str | None,
    environ: Mapping[str, str],
    *,
    readonly: bool = False,
    partial: bool = False,
) -> Repo:
    """The repository's spec and store; invalid configuration raises ProblemsError.

    `readonly` commands (plan, status, explain…) use the configuration cache but never write it.
    `partial` ones (status, cancel, explain, resources, fsck without --repair) go on with what
    could be read, after a warning, unless talon.yaml itself is unusable: a typo pushed in one
    schedule file must not keep anyone from seeing what runs, or from stopping one.
    """
    from talon.speccache import load_spec_cached

    root = find_repo(directory, dict(environ))
    spec, problems = load_spec_cached(root, write=not readonly)
    if spec is None or (problems and not partial):
        raise ProblemsError(problems)
    if problems:
        print(
            f"talon: warning: the configuration has {len(problems)} problem(s) "
            "(`talon validate` lists them); going on with what could be read",
            file=sys.stderr,
        )
    return Repo(root, spec, open_store(spec.config))


def report_problems(command: str, exc: ProblemsError) -> int:
    for p in exc.problems:
        print(p, file=sys.stderr)
    print(
        f"talon {command}: the configuration has {len(exc.problems)} problem(s); nothing was done",
        file=sys.stderr,
    )
    return 1


def open_repo_store(directory: str | None, environ: Mapping[str, str]) -> FileStore:
    """The store alone, for commands that only read runs: works even when a schedule file is
    invalid, since `talon show` is how people find out what happened."""
    from talon.speccache import load_spec_cached

    root = find_repo(directory, dict(environ))
    spec, _ = load_spec_cached(root, write=False)
    if spec is None:
        return FileStore(root / "state")
    return open_store(spec.config)
