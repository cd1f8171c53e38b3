"""`talon init [DIR]`: a new repository with a commented example job."""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from talon.cli import EXIT_OK, UsageError


def init(target: Path) -> list[Path]:
    """Copy the template into `target`; refuse to overwrite anything that exists."""
    template = resources.files("talon") / "templates" / "init"
    written: list[Path] = []
    with resources.as_file(template) as src:
        files = sorted(p for p in Path(src).rglob("*") if p.is_file())
        clashes = [
            target / p.relative_to(src)
            for p in files
            if (target / p.relative_to(src)).exists() and p.name != _GITIGNORE
        ]
        if clashes:
            raise UsageError(f"{clashes[0]} exists already: init writes only into a new repository")
        for p in files:
            dest = target / p.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if p.name == _GITIGNORE and dest.exists():
                # A git checkout has one: it gets the lines it lacks, nothing is replaced.
                if _add_missing_lines(p, dest):
                    written.append(dest)
                continue
            shutil.copyfile(p, dest)
            written.append(dest)
    (target / "state").mkdir(exist_ok=True)
    return written


_GITIGNORE = ".gitignore"


def _add_missing_lines(src: Path, dest: Path) -> bool:
    have = dest.read_text("utf-8", errors="replace")
    missing = [
        line
        for line in src.read_text("utf-8").splitlines()
        if line and not line.startswith("#") and line not in have.splitlines()
    ]
    if not missing:
        return False
    with open(dest, "a", encoding="utf-8") as fh:
        fh.write(("" if have.endswith("\n") or not have else "\n") + "\n".join(missing) + "\n")
    return True


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    target = Path(args.dir)
    if args.directory is not None and not target.is_absolute():
        target = Path(args.directory) / target
    try:
        target.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{target} exists and is not a directory") from None
    except OSError as exc:
        raise UsageError(f"cannot create {target}: {exc.strerror}") from None
    try:
        written = init(target)
    except OSError as exc:  # (a .gitignore that is a directory, a file not ours to read)
        raise UsageError(f"cannot write the repository into {target}: {exc}") from None
    for path in written:
        print(f"wrote {path}")
    print(f"next: talon -C {target} validate && talon -C {target} plan")
    return EXIT_OK
