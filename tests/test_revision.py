"""The commit a run is created from (`talon.revision`), and its memo for a process's passes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from talon.revision import git_revision


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_commit_and_dirty_and_the_memo_of_one_configuration(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "schedule").mkdir(parents=True)
    (root / "talon.yaml").write_text("timezone: UTC\n")
    (root / "schedule/a.yaml").write_text("jobs: {}\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "one")
    first = git(root, "rev-parse", "HEAD")
    loaded = object()  # the configuration a process loaded and creates runs from
    assert git_revision(root, loaded) == {"commit": first, "dirty": False}
    (root / "schedule/a.yaml").write_text("jobs: {a: {command: 'true'}}\n")
    # The same loaded configuration: its answer holds (no `git status` per pass)...
    assert git_revision(root, loaded) == {"commit": first, "dirty": False}
    # ...a configuration loaded since sees the edit...
    assert git_revision(root, object()) == {"commit": first, "dirty": True}
    assert git_revision(root) == {"commit": first, "dirty": True}
    # ...and a new commit is seen by the old one too.
    git(root, "commit", "-q", "-am", "two")
    second = git(root, "rev-parse", "HEAD")
    assert second != first
    assert git_revision(root, loaded) == {"commit": second, "dirty": False}


def test_no_git_no_revision(tmp_path: Path) -> None:
    (tmp_path / "talon.yaml").write_text("timezone: UTC\n")
    assert git_revision(tmp_path, object()) is None
