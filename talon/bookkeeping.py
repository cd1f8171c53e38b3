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

Files:

- `index.json`: the book as of the last checkpoint.
- `index.log`: what passes changed since, one line per change, appended under the pass lock
  (`+rel`/`-rel` open or closed, `c`/`k`/`d` a cursor, check time or durations set, `=rel<TAB>run`
  a run held in memory and not yet written, or written without its own fsync: the next pass
  writes it from here if the file is missing, empty or unreadable; preceded by
  `@host:boot:pid-start` when a `reconcile --wait` keeps the file back on purpose, so that
  another pass writing it while that process lives does not report it as a dead pass's; `#`
  a sync; `!rel` such lines voided). A pass appends its
  changes in one write instead of rewriting the whole index (which costs a JSON dump of every
  job's cursor); past `CHECKPOINT_BYTES`, and when a `reconcile` is done, the index is
  rewritten and the log emptied, after a sync.
- `journal`: `+rel` lines from creators outside passes (trigger, backfill, retry), which
  `talon watch` also listens to. A pass folds them in and empties it (after a sync).

A process remembers what it last saved, so the passes of one `reconcile --wait` or `watch` read
neither file again while nobody else wrote them.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, overload

from talon.plan import Cursor
from talon.runs import OPEN_STATES, Run
from talon.store import (
    BOOK_DIR,
    CorruptRun,
    FileStore,
    Identity,
    StoreError,
    identity,
    write_atomic,
)

INDEX = "index.json"
INDEX_LOG = "index.log"
JOURNAL = "journal"
KEEP_DURATIONS = 20
CHECKPOINT_BYTES = 256 * 1024  # a checkpoint costs a sync and a durable index write
# The size of the log a checkpoint of this process left (the lines it carried over), by book
# directory: the next checkpoint comes when the log has grown CHECKPOINT_BYTES past that. A
# `--wait` holding back the files of 200 blocked runs carries ~240 KB over; measured from
# zero, every few passes checkpointed again and rewrote all of it.
_KEPT: dict[str, tuple[int, int, int]] = {}  # book directory: the log's (dev, inode, size)


_GENERATION = itertools.count(1)


@dataclass(frozen=True)
class _Snapshot:
    """The book as the files say it (after a load or a save); never mutated."""

    open: frozenset[str]
    cursors: dict[str, dict[str, Any]]
    checked: dict[str, float]
    durations: dict[str, list[float]]
    cursor_generation: int


@dataclass
class Book:
    open: set[str] = field(default_factory=set)
    cursors: dict[str, dict[str, Any]] = field(default_factory=dict)
    checked: dict[str, float] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # damaged files met while rebuilding
    # Runs a pass fired but had not written when it died, or wrote without its own fsync:
    # relpath -> the run's JSON text (the latest line).
    unwritten: dict[str, str] = field(default_factory=dict)
    # Those whose latest line came after the log's last sync mark: a damaged file may be
    # a power cut's doing and is restored from the line; before the mark it was on disk whole,
    # and damage since is someone else's (quarantined, not overwritten with an older copy).
    fresh: set[str] = field(default_factory=set)
    base: _Snapshot | None = None  # what the files held at load; None: rebuilt
    journal_lines: int = 0  # creator lines folded in, to be emptied from the journal
    # Runs whose only record is their latest line in the log, held back by the process saving
    # (a `reconcile --wait`, see talon.pass_deferral): relpath -> that line's text, asked for
    # only by a checkpoint, which must carry those lines over.
    held_back: Callable[[], dict[str, str]] | None = None
    # The process whose `@` line came with a run's latest `=` line (see whoami).
    owners: dict[str, str] = field(default_factory=dict)
    _kept_for: tuple[Container[str], int] | None = None  # (jobs, cursor generation) last kept
    # Whether anyone but this process changed the book since it last saved it (it was not
    # remembered, or others appended to it): their passes and creators may have written runs.
    foreign: bool = True
    # Changes whenever the cursors may have: equal generations, equal cursors (a pass that
    # knows when the next trigger is due skips the per-job walk while nothing changed).
    cursor_generation: int = field(default_factory=lambda: next(_GENERATION))

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
        self.cursor_generation = next(_GENERATION)

    def keep_cursors(self, jobs: Container[str]) -> None:
        """Drop the cursors of jobs no longer in the schedule (not looked at again while
        neither the schedule nor the cursors changed: the passes of a `--wait` or `watch`)."""
        if (
            self._kept_for is not None
            and self._kept_for[0] is jobs
            and self._kept_for[1] == self.cursor_generation
        ):
            return
        kept = {k: v for k, v in self.cursors.items() if k in jobs}
        if len(kept) != len(self.cursors):
            self.cursors = kept
            self.cursor_generation = next(_GENERATION)
        self._kept_for = (jobs, self.cursor_generation)

    def add_duration(self, job: str, seconds: float) -> None:
        self.durations[job] = [*self.durations.get(job, []), round(seconds, 3)][-KEEP_DURATIONS:]

    def snapshot(self) -> _Snapshot:
        return _Snapshot(
            frozenset(self.open),
            dict(self.cursors),
            dict(self.checked),
            dict(self.durations),
            self.cursor_generation,
        )


@dataclass(frozen=True)
class _Saved:
    """What this process last saved: valid while the index and the log are as it left them."""

    index: Identity | None  # index.json's identity
    log: tuple[int, int]  # index.log's (device, inode)
    log_size: int
    book: _Snapshot


_SAVED: dict[str, _Saved] = {}


def _identity(path: str) -> Identity | None:
    try:
        return identity(os.stat(path))
    except FileNotFoundError:
        return None


def load(store: FileStore, *, read: Callable[[Path], Run] | None = None) -> Book:
    """The book: the index, the changes logged since, and creators' journal lines.

    Readers without the pass lock (`status`, `resources`, `fsck`) may meet a checkpoint half
    done (the new index with the old log, or the old index with the emptied log): a load
    during which the index changed is read again. `read` reads the run files when the index
    has to be rebuilt (see rebuild)."""
    index = f"{store.book}/{INDEX}"
    before = _identity(index)
    for _ in range(5):
        book = _load(store, before, read)
        after = _identity(index)
        if after == before:
            break
        before = after
    return book


def _load(
    store: FileStore, index_identity: Identity | None, read: Callable[[Path], Run] | None
) -> Book:
    book_dir = str(store.book)
    log_path = f"{book_dir}/{INDEX_LOG}"
    # On NFS (lockfile mode) attributes are cached: a stat may not show another host's write.
    saved = _SAVED.get(book_dir) if store.lock_mode != "lockfile" else None
    book: Book | None = None
    offset = 0
    unread = True  # whether the log may hold lines past `offset`
    if saved is not None and saved.index == index_identity:
        try:
            st = os.stat(log_path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == saved.log and st.st_size >= saved.log_size:
            # What this process saved last, plus whatever others appended since.
            snap = saved.book
            book = Book(
                set(snap.open), dict(snap.cursors), dict(snap.checked), dict(snap.durations)
            )
            book.cursor_generation = snap.cursor_generation
            book.base = snap
            offset = saved.log_size
            unread = st.st_size > offset
    rebuilt = False
    if book is None:
        data = store.load_book(INDEX)
        if data is None:
            book, rebuilt = rebuild(store, read=read), True
        else:
            book = Book(
                open=set(data.get("open", [])),
                cursors=dict(data.get("cursors", {})),
                checked=dict(data.get("checked", {})),
                durations=dict(data.get("durations", {})),
            )
    replayed = _replay(book, log_path, offset) if unread else 0
    if replayed or book.base is None:
        book.base = None if rebuilt else book.snapshot()  # rebuilt: the next save checkpoints
    book.journal_lines = _replay(book, f"{book_dir}/{JOURNAL}", 0)
    book.foreign = offset == 0 or bool(replayed) or bool(book.journal_lines)
    return book


def written_by_others(store: FileStore) -> bool:
    """Whether the book changed since this process last saved it: a creator's journal line,
    another process's pass appending to the log or rewriting the index. (`talon watch` asks
    on each event for these files: its own saves must not wake it.)"""
    book_dir = str(store.book)
    try:
        if os.stat(f"{book_dir}/{JOURNAL}").st_size:
            return True
    except FileNotFoundError:
        pass
    saved = _SAVED.get(book_dir)
    if saved is None:
        return True
    try:
        st = os.stat(f"{book_dir}/{INDEX_LOG}")
    except FileNotFoundError:
        return True
    return (
        (st.st_dev, st.st_ino) != saved.log
        or st.st_size != saved.log_size
        or _identity(f"{book_dir}/{INDEX}") != saved.index
    )


def _replay(book: Book, path: str, offset: int) -> int:
    """Apply the lines of a log from `offset`; returns how many there were."""
    try:
        with open(path, "rb") as fh:
            if offset:
                fh.seek(offset)
            raw = fh.read()
    except FileNotFoundError:
        return 0
    n = 0
    owner: str | None = None  # the process an `@` line named, for the lines of its append
    for line in raw.decode("utf-8", "replace").split("\n")[:-1]:  # a torn last line: ignored
        if not line:
            owner = None
            continue  # each append starts on a line of its own (see _append)
        n += 1
        kind, rest = line[:1], line[1:]
        try:
            if kind == "@":
                owner = rest
            elif kind == "#":
                book.fresh.clear()
            elif kind == "!":
                book.unwritten.pop(rest, None)
                book.fresh.discard(rest)
            elif kind == "+":
                book.open.add(rest)
            elif kind == "-":
                book.open.discard(rest)
            elif kind == "=":
                rel, text = rest.split("\t", 1)
                book.open.add(rel)
                book.unwritten[rel] = text
                book.fresh.add(rel)
                if owner is None:
                    book.owners.pop(rel, None)
                else:
                    book.owners[rel] = owner
            elif kind in ("c", "k", "d"):
                key, text = rest.split("\t", 1)
                target: dict[str, Any]
                if kind == "c":
                    target = book.cursors
                    book.cursor_generation = next(_GENERATION)
                elif kind == "k":
                    target = book.checked
                else:
                    target = book.durations
                if text:
                    target[key] = json.loads(text)
                else:
                    target.pop(key, None)
        except ValueError:
            continue  # a damaged line: the pass re-derives what it said
    return n


def journal_fired(store: FileStore, relpath: str, run_json: str, *, held: bool = False) -> None:
    """Record a run a pass holds in memory until it dispatches it: if the pass dies first,
    the next one writes it from here, so the fire is not subject to catch-up again.

    `held`: a `reconcile --wait` keeps the run's file back on purpose (talon.pass_deferral);
    the line comes after an `@` line naming this process, so that another pass writing the
    file meanwhile does not take it for a run a dead pass left (see held_by_the_living)."""
    owner = f"@{whoami()}\n" if held else ""
    _append(store, INDEX_LOG, f"{owner}={relpath}\t{run_json}\n")


_WHOAMI: dict[int, str] = {}


def whoami() -> str:
    """This process as the `@` lines of the index log name it: host, pid and start time, so
    that another process can tell a `reconcile --wait` that keeps a run's file back from a
    pass that died (see held_by_the_living)."""
    pid = os.getpid()
    found = _WHOAMI.get(pid)
    if found is None:
        from talon.executors.runner import boot_id, read_proc

        try:
            me = read_proc(pid)
        except OSError:
            me = None
        # ("?" when /proc cannot tell: an identity no process will ever match.)
        start = me.start if me is not None else "?"
        found = _WHOAMI[pid] = f"{os.uname().nodename}:{boot_id() or '?'}:{pid}-{start}"
    return found


def held_by_the_living(owner: str | None) -> bool:
    """Whether `owner` (an `@` line's process, host:boot:pid-start) is another process of
    this host and boot, still alive. False whenever that cannot be told."""
    if owner is None or owner == whoami():
        return False
    host_boot, _, ident = owner.rpartition(":")
    host, _, boot = host_boot.rpartition(":")
    pid, _, start = ident.partition("-")
    if host != os.uname().nodename or not pid.isdigit() or not start.isdigit():
        return False  # another host, or a process /proc could not tell
    from talon.executors.runner import identify

    try:
        found = identify(int(pid), int(start), boot)  # (a boot of "?" matches none)
    except OSError:  # (/proc mounted with hidepid: another user's process is not ours to see)
        return False
    return found is not None and not found.dead


def log_written(store: FileStore, relpath: str, text: str) -> None:
    """The text of a run file a pass wrote without its fsync (`FileStore.wal`): until the
    pass's sync, a power cut may leave the file empty, and the next pass restores it from
    here. JSON escapes every control character inside strings, so the file's newlines are
    only layout and become spaces on the line."""
    _append(store, INDEX_LOG, f"={relpath}\t{text.replace(chr(10), ' ')}\n")


def logged_copy(text: str) -> Run | None:
    """The run a `=` line of the index log holds; None when the line is damaged."""
    try:
        return Run.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError):
        return None


def logged_runs(store: FileStore, rel_prefix: str) -> dict[str, Run]:
    """The runs whose last copy is in the index log, by relpath, of those under `rel_prefix`
    (`period/job/`, or a file's own relpath): what a `reconcile --wait` keeps back."""
    try:
        with open(f"{store.book}/{INDEX_LOG}", "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return {}
    if f"={rel_prefix}".encode() not in raw:
        return {}  # (the common case, without parsing the log)
    out = {}
    for rel, text in _logged_lines(store).items():
        if rel.startswith(rel_prefix):
            run = logged_copy(text)
            if run is not None:
                out[rel] = run
    return out


def logged_run(store: FileStore, run_id: str) -> tuple[str, Run] | None:
    """The last copy of run `run_id` the index log holds, as (relpath, run): a run a
    `reconcile --wait` started and has not written yet is only there (Pass._defer)."""
    suffix = f"/{run_id}.json"
    for rel, text in _logged_lines(store).items():
        if rel.endswith(suffix):
            run = logged_copy(text)
            return (rel, run) if run is not None else None
    return None


def _logged_lines(store: FileStore) -> dict[str, str]:
    """The latest `=` line of each run in the whole index log: relpath -> run JSON."""
    scratch = Book()
    _replay(scratch, f"{store.book}/{INDEX_LOG}", 0)
    return scratch.unwritten


def find_run(store: FileStore, run_ref: str) -> tuple[Path, Run, bool]:
    """A run by id or path, as the read-only commands show it: (its file's path, the run,
    whether it comes from the index log because a `reconcile --wait` keeps its file back for
    a moment). Raises StoreError when there is no such run, CorruptRun when its file is
    unreadable."""
    try:
        path = store.find(run_ref)
    except StoreError:
        logged = logged_run(store, run_ref) if "@" in run_ref and "/" not in run_ref else None
        if logged is None:
            raise
        return store.path_at(logged[0]), logged[1], True
    return path, store.read(path), False


def read_open(store: FileStore, book: Book, rels: Iterable[str] | None = None) -> list[Run]:
    """The open runs (or those of `rels`) as the read-only commands show them: from their
    files, or from the index log while a `reconcile --wait` keeps a file back (Pass._defer).
    Unreadable ones are left out (a pass reports them)."""
    out = []
    for rel in sorted(book.open if rels is None else rels):
        try:
            out.append(store.read(store.path_at(rel)))
            continue
        except FileNotFoundError:
            text = book.unwritten.get(rel)
        except (OSError, ValueError, StoreError):
            continue
        run = logged_copy(text) if text else None
        if run is not None:
            out.append(run)
    return out


def pass_opened(store: FileStore, relpath: str) -> None:
    """A pass records a run as open before its file exists."""
    _append(store, INDEX_LOG, f"+{relpath}\n")


def journal_open(store: FileStore, relpath: str) -> None:
    """A creator outside a pass records a run as open before its file exists (appended, so
    concurrent writers are safe; `talon watch` listens for it)."""
    _append(store, JOURNAL, f"+{relpath}\n")


def forget_written(store: FileStore, relpath: str) -> None:
    """The pass found `relpath` damaged after a sync and did not restore it: its `=` lines
    are void, here and for every later replay (else a missing file would be 'restored')."""
    _append(store, INDEX_LOG, f"!{relpath}\n")


def mark_synced(store: FileStore) -> None:
    """Note in the log that everything before this line is durable (`FileStore.on_synced`).
    Not itself waited for: a mark lost to a power cut only makes replay more careful."""
    size = _append(store, INDEX_LOG, "#\n", defer=False, stat=True).st_size
    book_dir = str(store.book)
    saved = _SAVED.get(book_dir)
    if saved is not None and saved.log_size == size - len("\n#\n"):
        # Still this process's log as it saved it, plus the mark: remember that too, or the
        # next load would replay it and a watcher would take it for someone else's write.
        _SAVED[book_dir] = replace(saved, log_size=size)


@overload
def _append(
    store: FileStore, name: str, text: str, *, defer: bool = ..., stat: Literal[True]
) -> os.stat_result: ...


@overload
def _append(store: FileStore, name: str, text: str, *, defer: bool = ...) -> None: ...


def _append(
    store: FileStore, name: str, text: str, *, defer: bool = True, stat: bool = False
) -> os.stat_result | None:
    """Append whole lines in one write; the file's stat after it, if asked. The write starts
    with a newline of its own: a line torn by a power cut then spoils only itself, never the
    line appended after it (replay skips empty lines)."""
    store.makedirs(store.book)
    path = store.path_at(f"{BOOK_DIR}/{name}")  # (cached: a Path is slow to make)
    if defer:
        store.deferred(path)  # a pass's lines are durable with its next sync
    data = ("\n" + text).encode()
    # (The index log is written under the pass lock only: kept open while it is held. The
    # journal is appended to by creators outside a pass.)
    return store.append(str(path), data, stat=stat, keep=name == INDEX_LOG)


def _changes(base: _Snapshot, book: Book) -> list[str]:
    out = [f"+{rel}\n" for rel in sorted(book.open - base.open)]
    out += [f"-{rel}\n" for rel in sorted(base.open - book.open)]
    for kind, old, new in (
        ("c", base.cursors, book.cursors),
        ("k", base.checked, book.checked),
        ("d", base.durations, book.durations),
    ):
        for key, value in new.items():
            was = old.get(key)
            if was is not value and was != value:
                out.append(f"{kind}{key}\t{json.dumps(value, separators=(',', ':'))}\n")
        out += [f"{kind}{key}\t\n" for key in old.keys() - new.keys()]
    return out


def save(store: FileStore, book: Book, *, checkpoint: bool = False) -> None:
    """Record the book; callers hold the pass lock. Appends the changes to the log, or
    rewrites the index (a checkpoint) when asked, after a rebuild, or when the log is long."""
    book_dir = str(store.book)
    log_path = f"{book_dir}/{INDEX_LOG}"
    lines = _changes(book.base, book) if book.base is not None else None
    log = _stat(log_path)
    size = log.st_size if log else 0
    text = "".join(lines) if lines is not None else ""
    if checkpoint and lines == [] and size == 0 and not book.journal_lines:
        pass  # nothing changed since the last checkpoint
    elif lines is None or checkpoint or _grown(book_dir, log) + len(text) > CHECKPOINT_BYTES:
        _checkpoint(store, book)
    else:
        log = _append(store, INDEX_LOG, text, stat=True) if text else _stat(log_path)
        if book.journal_lines:
            # The creators' lines are in the log now; durable before they leave the journal.
            store.sync()
            _truncate(f"{book_dir}/{JOURNAL}")
        if log is None:
            _remember(store, book, (0, 0), 0)
        else:
            _remember(store, book, (log.st_dev, log.st_ino), log.st_size)


def _checkpoint(store: FileStore, book: Book) -> None:
    data = {
        "version": 1,
        "open": sorted(book.open),
        "cursors": dict(book.cursors),
        "checked": dict(book.checked),
        "durations": dict(book.durations),
    }
    store.sync()  # every run file the log or the journal could rebuild, durable first
    store.save_book(INDEX, data, durable=True)
    book_dir = str(store.book)
    log = f"{book_dir}/{INDEX_LOG}"
    # Lines no pass has acted on yet (a run a killed pass fired and never wrote, a file a power
    # cut emptied) outlive the checkpoint: the next pass restores from them.
    held = book.held_back() if book.held_back is not None else {}
    lines = {**book.unwritten, **held}
    owners = {**book.owners, **dict.fromkeys(held, whoami())}
    # (An empty line ends what an `@` line says: each kept line names its own owner.)
    keep = "".join(
        (f"\n@{owners[rel]}" if rel in owners else "") + f"\n={rel}\t{text}\n"
        for rel, text in sorted(lines.items())
        if _needs_restore(store, rel, rel in book.fresh)
    )
    store.close_appends()  # (the log is replaced, or emptied)
    if keep:
        write_atomic(Path(log), keep, durable=True)
    else:
        _truncate(log)
    _truncate(f"{book_dir}/{JOURNAL}")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    # Remembered as empty: kept lines are replayed by this process's next load too.
    _remember(store, book, (st.st_dev, st.st_ino), 0)
    _KEPT[book_dir] = (st.st_dev, st.st_ino, st.st_size)


def _grown(book_dir: str, log: os.stat_result | None) -> int:
    """How much the log has grown since this process's last checkpoint left it: all of it when
    it is another file since (another process's checkpoint carried lines over) or shorter
    (truncated). Another process's checkpoint that truncates it and lets it grow past the
    size this process left goes unseen: the log then waits for at most that much more."""
    if log is None:
        return 0
    dev, ino, kept = _KEPT.get(book_dir, (0, 0, 0))
    if (log.st_dev, log.st_ino) != (dev, ino) or log.st_size < kept:
        return log.st_size
    return log.st_size - kept


def _needs_restore(store: FileStore, rel: str, fresh: bool) -> bool:
    try:
        size = os.stat(store.path_at(rel)).st_size
    except FileNotFoundError:
        return True  # a run fired and never written: restored whatever the sync marks say
    return fresh and size == 0


def _remember(store: FileStore, book: Book, log: tuple[int, int], size: int) -> None:
    book_dir = str(store.book)
    _SAVED[book_dir] = _Saved(_identity(f"{book_dir}/{INDEX}"), log, size, book.snapshot())


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _truncate(path: str) -> None:
    try:
        if os.stat(path).st_size:
            os.truncate(path, 0)
    except FileNotFoundError:
        pass


def rebuild(store: FileStore, *, read: Callable[[Path], Run] | None = None) -> Book:
    """Scan every run file once: the open ones go in the index, and each job's cursor restarts
    at its newest scheduled trigger, so triggers missed since are caught up, not forgotten.

    `read` (default: the store's, which moves a damaged file aside) raises CorruptRun for a
    damaged file: `fsck` passes one that moves nothing and reports what it finds itself."""
    book = Book()
    newest: dict[str, datetime] = {}
    read_run = store.read if read is None else read
    for path in store.iter_run_files():
        try:
            run = read_run(path)
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
