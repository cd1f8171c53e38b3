"""The no-op shortcut: a pass that would do nothing is known to, without loading anything.

After each pass Talon writes `state/.talon/quiet.json`: the configuration's fingerprint (each
file's path, size, mtime and inode), whether any run is open, the earliest next trigger, and
the pass's time. A later `talon reconcile` that finds the same configuration, no open run,
nothing in the creation journal and no trigger due can stop there: the cost of a no-op pass
is then Python's start-up, one small JSON read and a stat per configuration file, whatever
the size of the schedule or the history. Anything else takes the full pass.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from talon.discover import fingerprint

QUIET = "quiet.json"
JOURNAL = "journal"


def _book(root: Path) -> Path:
    return root / "state" / ".talon"


def is_quiet(root: Path, now_ts: float) -> bool:
    book = _book(root)
    try:
        data: Any = json.loads((book / QUIET).read_bytes())
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("open", True):
        return False
    at, due = data.get("at"), data.get("next_due")
    if not isinstance(at, float | int) or at > now_ts:
        return False  # a clock behind the last pass gets the full pass (and its warning)
    if due is not None and (not isinstance(due, float | int) or due <= now_ts):
        return False
    try:
        if os.stat(book / JOURNAL).st_size:
            return False  # someone created a run since
    except FileNotFoundError:
        pass
    return bool(data.get("fingerprint") == [list(f) for f in fingerprint(root)])


_QUIET_PATHS: dict[Path, str] = {}


def forget(root: Path) -> None:
    """Remove the shortcut before a pass changes anything."""
    path = _QUIET_PATHS.get(root)
    if path is None:
        path = _QUIET_PATHS[root] = str(_book(root) / QUIET)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def record(
    root: Path, state_root: Path, *, any_open: bool, next_due: float | None, at: float
) -> None:
    """Say what the pass just left; only for the default state directory (where `is_quiet`
    looks). Written without fsync: losing it only costs the next pass its shortcut."""
    if state_root.resolve() != (root / "state").resolve():
        return
    data = {
        "fingerprint": [list(f) for f in fingerprint(root)],
        "open": any_open,
        "next_due": next_due,
        "at": at,
    }
    path = _book(root) / QUIET
    tmp = path.with_name(f".{QUIET}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, separators=(",", ":")))
        tmp.replace(path)
    except OSError:
        pass
