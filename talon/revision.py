"""Which commit of the repository a run was created from (read from .git, no subprocess)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


def _git_dir(root: Path) -> Path | None:
    for d in (root, *root.parents):
        g = d / ".git"
        if g.is_dir():
            return g
        if g.is_file():  # a worktree: "gitdir: <path>"
            text = g.read_text("utf-8").strip()
            if text.startswith("gitdir:"):
                return (d / text.split(":", 1)[1].strip()).resolve()
    return None


def _head(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text("utf-8").strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None
    ref = head.split(":", 1)[1].strip()
    try:
        return (git / ref).read_text("utf-8").strip()
    except OSError:
        pass
    try:
        for line in (git / "packed-refs").read_text("utf-8").splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    except OSError:
        pass
    return None


def git_revision(root: Path) -> dict[str, Any] | None:
    """{"commit": sha, "dirty": bool} for a git checkout, else None.

    Dirty means the configuration (talon.yaml, schedule/, resources/) differs from the
    commit, so a run can be traced to exactly what made it.
    """
    git = _git_dir(root)
    if git is None:
        return None
    commit = _head(git)
    if commit is None:
        return None
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", "talon.yaml", "schedule", "resources"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        dirty = bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        dirty = None
    return {"commit": commit, "dirty": dirty}
