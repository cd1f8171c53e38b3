"""Which commit of the repository a run was created from (read from .git, no subprocess)."""

from __future__ import annotations

import time
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


# Per repository root: (when the .git lookup was made, its result). The passes of one process
# (`reconcile --wait`, `watch`) look again at most once a second.
_GIT_DIRS: dict[Path, tuple[float, Path | None]] = {}
# Per repository root: (the key it was computed for, the revision).
_REVISIONS: dict[Path, tuple[tuple[Any, ...], dict[str, Any]]] = {}


def _git_dir_cached(root: Path) -> Path | None:
    now = time.monotonic()
    hit = _GIT_DIRS.get(root)
    if hit is not None and now - hit[0] < 1.0:
        return hit[1]
    found = _git_dir(root)
    _GIT_DIRS[root] = (now, found)
    return found


def git_revision(root: Path, config: object = None) -> dict[str, Any] | None:
    """{"commit": sha, "dirty": bool} for a git checkout, else None.

    Dirty means the configuration (talon.yaml, schedule/, resources/) differs from the
    commit, so a run can be traced to exactly what made it. `config`: the loaded configuration
    the caller creates runs from; while it, the commit and git's index are unchanged, the
    answer is too, and `git status` (a process, milliseconds) is not asked again.
    """
    git = _git_dir_cached(root)
    if git is None:
        return None
    commit = _head(git)
    if commit is None:
        return None
    hit = _REVISIONS.get(root)
    if (
        config is not None
        and hit is not None
        and hit[0][0] is config
        and hit[0][1:] == (commit, _index_mtime(git))
    ):
        return hit[1]
    import subprocess  # (here: outside a git checkout, a pass never needs it, 3 ms to import)

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
    revision = {"commit": commit, "dirty": dirty}
    if config is not None:
        # The index as `git status` left it: it may refresh it.
        _REVISIONS[root] = ((config, commit, _index_mtime(git)), revision)
    return revision


def _index_mtime(git: Path) -> int:
    try:
        return (git / "index").stat().st_mtime_ns
    except OSError:
        return 0
