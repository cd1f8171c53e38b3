"""The pass's bookkeeping under `state/.talon/`: which runs are open, and each job's cursor.

This is a cache of what the run files say, never the truth: it lets a pass read only the runs
that can matter instead of every file under `state/`, and know each job's next due instant
without computing it. When it is missing or damaged it is rebuilt by one full scan.

- `open`: paths (relative to state/) of runs that may be blocked, ready or running. A creator
  adds the path *before* creating the run file, so a crash never leaves a run unknown; stale
  entries (runs that have ended) are harmless and dropped at the end of a pass.
- `cursors`: per job, the definition hash, how far its timed triggers were processed, and its
  next due instant.
- `checked`: when each blocked run's constraints were last checked (poll intervals), kept out
  of the run files so that `git diff state/` shows decisions, not heartbeats.
- `durations`: the last successful durations of each job, for duration-based progress.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from talon.plan import Cursor
from talon.runs import OPEN_STATES
from talon.store import CorruptRun, FileStore

INDEX = "index.json"
JOURNAL = "journal"
KEEP_DURATIONS = 20


@dataclass
class Book:
    open: set[str] = field(default_factory=set)
    cursors: dict[str, dict[str, Any]] = field(default_factory=dict)
    checked: dict[str, float] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=dict)
    dirty: bool = False
    problems: list[str] = field(default_factory=list)  # damaged files met while rebuilding
    # Runs a pass fired but had not written when it died: relpath -> the run's JSON text.
    unwritten: dict[str, str] = field(default_factory=dict)

    def cursor(self, job: str) -> Cursor | None:
        raw = self.cursors.get(job)
        if raw is None:
            return None
        try:
            nd = raw.get("next_due")
            from datetime import UTC

            return Cursor(
                raw["hash"],
                datetime.fromisoformat(raw["cursor"]),
                datetime.fromtimestamp(nd, UTC) if nd is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            return None

    def set_cursor(self, job: str, cursor: Cursor) -> None:
        self.cursors[job] = cursor.as_json()
        self.dirty = True

    def add_duration(self, job: str, seconds: float) -> None:
        self.durations[job] = [*self.durations.get(job, []), round(seconds, 3)][-KEEP_DURATIONS:]
        self.dirty = True


def load(store: FileStore) -> Book:
    """The book, with journal entries folded in; rebuilt by a full scan when missing."""
    data = store.load_book(INDEX)
    if data is None:
        book = rebuild(store)
    else:
        book = Book(
            open=set(data.get("open", [])),
            cursors=dict(data.get("cursors", {})),
            checked=dict(data.get("checked", {})),
            durations=dict(data.get("durations", {})),
        )
    try:
        with open(store.book / JOURNAL, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("+") and line.endswith("\n"):
                    book.open.add(line[1:-1])
                    book.dirty = True
                elif line.startswith("=") and line.endswith("\n") and "\t" in line:
                    rel, text = line[1:-1].split("\t", 1)
                    book.open.add(rel)
                    book.unwritten[rel] = text
                    book.dirty = True
    except FileNotFoundError:
        pass
    return book


def journal_fired(store: FileStore, relpath: str, run_json: str) -> None:
    """Record a run a pass holds in memory until it dispatches it: if the pass dies first,
    the next one writes it from here, so the fire is not subject to catch-up again."""
    _append(store, f"={relpath}\t{run_json}\n")


def journal_open(store: FileStore, relpath: str) -> None:
    """Record a run as open before its file exists (appended, so concurrent writers are safe)."""
    _append(store, f"+{relpath}\n")


def _append(store: FileStore, line: str) -> None:
    store.makedirs(store.book)
    path = store.book / JOURNAL
    store.deferred(path)  # a pass's journal lines are durable with its next sync
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def save(store: FileStore, book: Book) -> None:
    """Write the index and empty the journal; callers hold the pass lock."""
    data = {
        "version": 1,
        "open": sorted(book.open),
        "cursors": dict(book.cursors),
        "checked": dict(book.checked),
        "durations": dict(book.durations),
    }
    store.save_book(INDEX, data)
    with contextlib.suppress(FileNotFoundError):
        os.truncate(store.book / JOURNAL, 0)
    book.dirty = False


def rebuild(store: FileStore) -> Book:
    """Scan every run file once: the open ones go in the index, and each job's cursor restarts
    at its newest scheduled trigger, so triggers missed since are caught up, not forgotten."""
    book = Book(dirty=True)
    newest: dict[str, datetime] = {}
    for path in store.iter_run_files():
        try:
            run = store.read(path)
        except FileNotFoundError:
            continue
        except CorruptRun as exc:
            book.problems.append(str(exc))
            continue
        if run.state in OPEN_STATES:
            book.open.add(path.relative_to(store.root).as_posix())
        if run.trigger.get("type") in ("cron", "window", "catchup") and run.trigger.get("at"):
            try:
                at = datetime.fromisoformat(str(run.trigger["at"]))
            except ValueError:
                continue
            if run.job not in newest or at > newest[run.job]:
                newest[run.job] = at
    for job, at in newest.items():
        # No hash: the pass recomputes next_due from this cursor for the job as it now is.
        book.cursors[job] = {
            "hash": "",
            "cursor": at.isoformat(),
            "at": at.timestamp(),
            "next_due": None,
        }
    return book
