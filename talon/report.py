"""Progress and artifacts reported by a running job, written into its run file.

Used by `talon progress`/`talon artifact add` and by in-process jobs. Each report is a
read-modify-write under the job's lock, so reports and reconcile passes never lose each
other's changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from talon.runs import Run, iso

# An item's state is the job's word for it: the run states are the usual ones, but a job may
# say `done` or `error`. These count as finished in `done`.
ITEM_STATES = ("pending", "running", "succeeded", "failed", "skipped")
_DONE = frozenset(
    {"succeeded", "failed", "skipped", "done", "ok", "success", "complete", "completed"}
    | {"finished", "error", "errored", "cancelled", "canceled"}
)
_ITEM_STATE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


def valid_item_state(state: str) -> bool:
    """One word (letters first, then letters, digits, `_` or `-`; at most 32)."""
    return _ITEM_STATE.fullmatch(state) is not None


def merge_progress(current: Mapping[str, Any] | None, report: Mapping[str, Any]) -> dict[str, Any]:
    """Fold one report into the run's progress.

    Item reports accumulate (each names some items and their states); a percent report
    replaces what was there.
    """
    if report.get("kind") == "items" or "items" in report:
        items = dict(current.get("items", {})) if current and current.get("kind") == "items" else {}
        items.update({str(k): str(v) for k, v in (report.get("items") or {}).items()})
        total = report.get("total")
        if total is None and current and current.get("kind") == "items":
            total = current.get("total")
        total = max(int(total), len(items)) if total is not None else len(items)
        done = sum(1 for v in items.values() if v.lower() in _DONE)
        return {"kind": "items", "items": items, "done": done, "total": total}
    percent = float(report.get("percent", 0))
    return {"kind": "percent", "percent": max(0.0, min(100.0, percent))}


def _store_for(run_file: Path) -> Any:
    """The store holding `run_file`, with the lock mode its repository configures (a job's
    report must take the same kind of lock a pass takes)."""
    from talon.store import FileStore

    # state/<period>/<job>/<run>.json: the store root is three levels up.
    state_root = run_file.resolve().parents[2]
    lock_mode = "flock"
    import os

    repo = os.environ.get("TALON_REPO")
    candidates = [Path(repo)] if repo else []
    candidates.append(state_root.parent)
    for root in candidates:
        if (root / "talon.yaml").is_file():
            from talon.speccache import load_spec_cached

            spec, _ = load_spec_cached(root, write=False)
            if spec is not None:
                lock_mode = spec.config.lock_mode
            break
    return FileStore(state_root, lock_mode)


class RunEnded(Exception):
    """A report for a run that has ended: what it says would rewrite a finished record."""


def _open(run: Run, what: str) -> None:
    if run.state.terminal:
        raise RunEnded(f"{run.id} is {run.state.value}: {what} is recorded while a run is open")


def record_progress(run_file: Path, progress: Mapping[str, Any], now: datetime) -> Run:
    from dataclasses import replace

    def change(run: Run) -> Run:
        _open(run, "progress")
        return replace(run, progress=merge_progress(run.progress, progress))

    result: Run = _store_for(run_file).update(run_file, change)
    return result


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\r\n]+")


def valid_url(url: str) -> bool:
    """An absolute URL: a scheme, a colon, then anything on one line (`https://…`, `s3://…`,
    `file:///…`; a path with a space in it is let through, unencoded, as jobs write them)."""
    return _URL.fullmatch(url) is not None


def record_artifact(run_file: Path, url: str, name: str | None, now: datetime) -> Run:
    from dataclasses import replace

    entry: dict[str, Any] = {"url": url, "at": iso(now)}
    if name:
        entry["name"] = name

    def change(run: Run) -> Run:
        _open(run, "an artifact")
        return replace(run, artifacts=(*run.artifacts, entry))

    result: Run = _store_for(run_file).update(run_file, change)
    return result
