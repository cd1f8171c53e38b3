"""`talon watch`: reconcile continuously, on file changes and on time.

The loop runs a pass (`talon.passes.Pass`, the same one `talon reconcile` runs), then sleeps
until the earliest of:

- a file event (watchdog, imported only here): the configuration (`talon.yaml`, `schedule/`,
  `resources/`); the open-run journal (`state/.talon/journal`, which every creator of a run
  appends to under the pass lock: `talon trigger`, `retry`, `backfill`) and the index and its
  log (`index.json`, `index.log`, which a reconcile from cron writes);
  a run file of a *live* period (one holding an open run) written by someone else (`talon
  progress`, `talon cancel`, another reconciler); an exit status a local run's wrapper writes
  under `state/.talon/proc/` (so a finishing run is collected at once, not at the next poll);
- the next due trigger instant across all jobs (the book's cursors);
- the next poll of each open run: a blocked run at its last check plus its job's `poll`, a ready
  or running one at the last pass plus its job's `poll` (allocation retries, remote executors,
  lost runs), a running one with a `timeout` at its deadline, a waiting one with a `start_by`
  at its deadline;
- the periodic pass (`--full-pass`), the safety net for events the kernel dropped: it also
  re-reads the configuration when any of its files changed.

Which periods are watched: only live ones, not the whole of `state/`, because inotify needs one
watch per directory and `state/<period>/<job>/` grows by a directory per job per period (10,000
daily jobs exhaust the default limit of watches within weeks). Creations in any period reach the
watcher through the journal; changes to finished runs in old periods wait for the periodic pass.

Debouncing: after the first event the loop waits for a quiet gap before it acts, at most
`MAX_SETTLE_S` in all. Run files and exit statuses are written whole (one rename or link, one
close), so a short gap (`STATE_QUIET_S`) only coalesces simultaneous ones; configuration waits
longer (`CONFIG_QUIET_S`): editors save by rename and `git pull` writes many files at once.

Own writes: every pass writes run files, and their events come back. An event for a run file
the last pass read or wrote is ignored when the file still holds exactly what that pass saw;
the journal is emptied by each pass, so a non-empty journal means someone else created a run,
and an index or log other than the one this process saved means another pass ran.
The jobs whose runs changed under someone else's hand are handed to the next pass as changed,
so their dependants' `after` constraints are checked at once instead of at the next poll.

Reload: a configuration event re-reads the configuration (through the spec cache); an invalid
one is reported as `talon validate` prints it, and the last valid configuration stays in force.
A pass that raises is reported and retried with a backoff; the watcher never dies of bad input.

Concurrency: a pass holds the repository's pass lock only while it runs, never while the loop
sleeps, so `talon reconcile` from cron interleaves with it. One watcher per repository: an
exclusive `flock` on `state/.talon/locks/@watch.lock`, taken without waiting, holding the pid;
the kernel drops it with the process, so a killed watcher never blocks the next one.
SIGTERM and SIGINT stop the loop between passes; runs are detached and keep running, and a later
watcher or reconcile collects them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from talon.bookkeeping import INDEX, INDEX_LOG, JOURNAL
from talon.discover import CONFIG_FILE
from talon.runs import OPEN_STATES, Run, State, dumps
from talon.store import BOOK_DIR, RUN_SUFFIX, FileStore, open_store

if TYPE_CHECKING:
    from talon.model import Job
    from talon.passes import Pass
    from talon.plan import Decision
    from talon.problems import Problem
    from talon.repo import Repo

CONFIG_QUIET_S = 0.05  # configuration: wait for this much quiet after the last event
STATE_QUIET_S = 0.002  # run files and exit statuses: each is one event
MAX_SETTLE_S = 0.5  # a stream of events never delays a pass by more than this
EPSILON_S = 0.001  # wake just after an instant, so the pass sees it as reached
STUCK_RETRY_S = 1.0  # an instant the last pass should have handled: retry, do not spin
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # after passes that raised, one after another
CONFIG_DIRS = ("schedule", "resources")
PROC_DIR = "proc"
WATCH_LOCK = "@watch.lock"


# --- pure: what an event means ---------------------------------------------------------------


class Change(Enum):
    CONFIG = "config"  # talon.yaml, a schedule or resource file
    RUN = "run"  # a run file, by its path relative to the state directory
    JOURNAL = "journal"  # a creator registered a run, or another process's pass wrote the index
    EXIT = "exit"  # a local run's exit status was written


def classify(kind: str, path: str, *, is_dir: bool, root: str, state: str) -> Change | None:
    """What a file event means for the watcher (None: nothing). `kind` is watchdog's event
    type (created, deleted, moved, closed...); a move is classified by its destination, and
    its source as `deleted`. Paths are absolute, with `/` separators."""
    if path.startswith(state + "/"):
        parts = path[len(state) + 1 :].split("/")
        if parts[0] == BOOK_DIR:
            if parts[1:] in ([JOURNAL], [INDEX_LOG], [INDEX]) and kind in ("closed", "moved"):
                return Change.JOURNAL
            if len(parts) == 3 and parts[1] == PROC_DIR and not parts[2].startswith("."):
                return Change.EXIT if kind in ("closed", "moved") else None
            return None
        if is_dir or len(parts) != 3 or any(p.startswith(".") for p in parts):
            return None  # directories, temp files (.name.tmp-PID), other dot files
        return Change.RUN if parts[2].endswith(RUN_SUFFIX) else None  # not logs
    if path.startswith(root + "/"):
        parts = path[len(root) + 1 :].split("/")
        if len(parts) == 1:
            return Change.CONFIG if parts[0] in (CONFIG_FILE, *CONFIG_DIRS) else None
        if parts[0] not in CONFIG_DIRS or any(p.startswith(".") for p in parts):
            return None
        if is_dir or parts[-1].endswith((".yaml", ".yml")):
            return Change.CONFIG
    return None


# --- pure: when to wake ----------------------------------------------------------------------


@dataclass(frozen=True)
class OpenRun:
    """What the timer needs of an open run; instants are epoch seconds."""

    run_id: str
    state: State
    poll_s: float
    checked: float | None = None  # last constraint check (blocked runs)
    deadline: float | None = None  # started + timeout (running), start_by (blocked, ready)


@dataclass(frozen=True)
class Wake:
    at: float  # epoch seconds
    why: str


def next_wake(
    last_pass: float, due: Mapping[str, float | None], runs: Iterable[OpenRun], full_pass_s: float
) -> Wake:
    """The earliest instant the next pass is needed at, after a pass at `last_pass`.

    `due` is each job's next due trigger instant (None: never). An instant at or before the last
    pass is one that pass should have handled; it is retried after `STUCK_RETRY_S`, so that a
    pass unable to move it on never makes the loop spin.
    """
    best = Wake(last_pass + full_pass_s, "full pass")

    def offer(at: float, why: str) -> None:
        nonlocal best
        if at <= last_pass:
            at, why = last_pass + STUCK_RETRY_S, f"{why} (retry)"
        if at < best.at:
            best = Wake(at, why)

    for job, at in due.items():
        if at is not None and at + EPSILON_S < best.at:
            offer(at + EPSILON_S, f"trigger {job}")
    for run in runs:
        if run.state is State.BLOCKED:
            since = run.checked if run.checked is not None else last_pass
            offer(since + run.poll_s + EPSILON_S, f"poll {run.run_id}")
        elif run.state in OPEN_STATES:
            offer(last_pass + run.poll_s + EPSILON_S, f"poll {run.run_id}")
        if run.deadline is not None:
            offer(run.deadline + EPSILON_S, f"deadline {run.run_id}")
    return best


def backoff_s(failures: int, full_pass_s: float) -> float:
    """How long to wait after `failures` passes in a row raised (never beyond a full pass)."""
    return min(BACKOFF_S[min(failures, len(BACKOFF_S)) - 1], full_pass_s)


# --- the shell: waking up --------------------------------------------------------------------


@dataclass
class Batch:
    """Changes the watchdog thread saw since the loop last looked."""

    config: bool = False
    journal: bool = False
    exits: bool = False
    runs: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.config or self.journal or self.exits or bool(self.runs)


class Inbox:
    """Handed from the watchdog thread (and signal handlers) to the loop: the changes, and a
    byte on a pipe that wakes the loop's `select`. `poke` takes no lock: it is signal-safe."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._lock = threading.Lock()
        self._batch = Batch()

    def put(self, change: Change, rel: str = "") -> None:
        with self._lock:
            if change is Change.CONFIG:
                self._batch.config = True
            elif change is Change.JOURNAL:
                self._batch.journal = True
            elif change is Change.EXIT:
                self._batch.exits = True
            else:
                self._batch.runs.add(rel)
        self.poke()

    def poke(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe wakes the loop all the same
            os.write(self._write_fd, b"!")

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds; True when woken by a poke."""
        ready, _, _ = select.select([self._read_fd], [], [], max(0.0, timeout))
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 4096):
                pass
        return True

    def has_config(self) -> bool:
        with self._lock:
            return self._batch.config

    def take(self) -> Batch:
        with self._lock:
            batch, self._batch = self._batch, Batch()
        return batch

    def close(self) -> None:
        os.close(self._read_fd)
        os.close(self._write_fd)


class Watches:
    """The watchdog observer and its watches, re-armed as directories come and go."""

    def __init__(
        self, on_event: Callable[[str, str, bool], None], report: Callable[[str], None]
    ) -> None:
        from watchdog import events
        from watchdog.observers import Observer

        class Handler(events.FileSystemEventHandler):
            def on_any_event(self, event: events.FileSystemEvent) -> None:
                dest = os.fsdecode(event.dest_path) if event.dest_path else ""
                if dest:
                    on_event("deleted", os.fsdecode(event.src_path), event.is_directory)
                    on_event(event.event_type, dest, event.is_directory)
                else:
                    on_event(event.event_type, os.fsdecode(event.src_path), event.is_directory)

        # Only the event types the watcher acts on: the kernel does not even report the rest
        # (a job writing its log, lock files opened and closed by every command).
        changes = [
            events.FileCreatedEvent,
            events.FileDeletedEvent,
            events.FileMovedEvent,
            events.FileClosedEvent,
            events.DirCreatedEvent,
            events.DirDeletedEvent,
            events.DirMovedEvent,
        ]
        self._filters: dict[bool, list[Any]] = {
            True: changes,
            False: [events.FileClosedEvent, events.FileMovedEvent],
        }
        self._handler = Handler()
        _quiet_inactive_emitters()
        self._observer = Observer()
        self._observer.start()
        self._current: dict[tuple[str, bool], tuple[int, Any]] = {}
        self._failed: set[str] = set()
        self._report = report

    def arm(self, wanted: Mapping[str, tuple[bool, bool]]) -> None:
        """Watch exactly `wanted` ({directory: (recursive, all changes or closes only)}),
        replacing any watch whose directory was deleted and created again."""
        for key, (inode, old) in list(self._current.items()):
            path, recursive = key
            if path not in wanted or wanted[path][0] != recursive or _inode(path) != inode:
                with contextlib.suppress(KeyError, OSError):
                    self._observer.unschedule(old)
                del self._current[key]
        for path, (recursive, all_changes) in wanted.items():
            found = _inode(path)
            if (path, recursive) in self._current or found is None:
                continue
            try:
                watch = self._observer.schedule(
                    self._handler,
                    path,
                    recursive=recursive,
                    event_filter=self._filters[all_changes],
                )
            except OSError as exc:
                if path not in self._failed:
                    self._failed.add(path)
                    hint = (
                        " (raise fs.inotify.max_user_watches)" if exc.errno == errno.ENOSPC else ""
                    )
                    why = exc.strerror or exc
                    self._report(f"cannot watch {path}: {why}{hint}; the periodic pass covers it")
                continue
            self._failed.discard(path)
            self._current[(path, recursive)] = (found, watch)

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


def _quiet_inactive_emitters() -> None:
    """watchdog logs an error when an inotify emitter is stopped while its thread waits for an
    event (a watch replaced, the observer stopped): nothing is lost, since the watch is gone on
    purpose, but with no logging set up it reached stderr as an error. That one is dropped."""
    import logging

    log = logging.getLogger("watchdog.observers.inotify")
    if not any(isinstance(f, _InactiveEmitter) for f in log.filters):
        log.addFilter(_InactiveEmitter())


class _InactiveEmitter:
    def filter(self, record: Any) -> bool:
        return "called when the thread is inactive" not in str(record.msg)


def _inode(path: str) -> int | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino if os.path.isdir(path) else None


# --- the shell: one watcher per repository ---------------------------------------------------


@contextlib.contextmanager
def watcher_lock(store: FileStore) -> Iterator[str | None]:
    """Hold the repository's watcher lock; yields None, or the pid of the watcher holding it."""
    store.ensure()
    path = store.book / "locks" / WATCH_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            yield _holder(fd)
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield None
    finally:
        os.close(fd)  # closing drops the lock


def _holder(fd: int) -> str:
    for _ in range(20):  # the holder writes its pid just after it takes the lock
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "unknown"


def config_fingerprint(root: Path) -> tuple[tuple[str, int, int, int], ...]:
    """Path, size, mtime and inode of every configuration file: any edit changes it."""
    from talon.discover import fingerprint

    return tuple(fingerprint(root))


# --- the loop --------------------------------------------------------------------------------


@dataclass
class Pending:
    """What the next pass is for, accumulated across wake-ups until it runs."""

    config: bool = False
    work: bool = False  # a run was created, changed or ended by someone else
    jobs: set[str] = field(default_factory=set)


class Watcher:
    def __init__(
        self,
        repo: Repo,
        environ: Mapping[str, str],
        *,
        full_pass_s: float,
        json_lines: bool,
        out: TextIO,
        err: TextIO,
    ) -> None:
        self.repo = repo
        self.root = repo.root.resolve()
        self.environ = environ
        self.full_pass_s = full_pass_s
        self.json_lines = json_lines
        self.out = out
        self.err = err
        self.state_dir = str(repo.store.root.resolve())
        self.inbox = Inbox()
        self.fingerprint = config_fingerprint(repo.root)
        self.stopping = ""
        self.pending = Pending()
        self.seen: dict[str, Run] = {}  # run files as the last pass left them (relpath -> run)
        self.live: set[str] = set()  # period keys holding open runs
        self.wake = Wake(time.time(), "start")
        self.hold_until = 0.0
        self.failures = 0
        self.watches: Watches | None = None

    # --- output ---

    def log(self, at: datetime, action: str, job: str, run: str, detail: str) -> None:
        stamp = at.astimezone(UTC).isoformat(timespec="milliseconds")
        if self.json_lines:
            line = json.dumps(
                {"at": stamp, "action": action, "job": job, "run": run, "detail": detail}
            )
        elif run:
            line = f"{stamp} {action:<8} {run}" + (f": {detail}" if detail else "")
        else:  # the watcher's own events: start, reload, stop
            line = f"{stamp} {action:<8} {detail}"
        print(line, file=self.out, flush=True)

    def log_decision(self, at: datetime, d: Decision) -> None:
        self.log(at, d.action, d.job, d.run, d.detail)

    def problem(self, text: str) -> None:
        print(f"talon watch: {text}", file=self.err, flush=True)

    # --- events (called on the watchdog thread) ---

    def on_event(self, kind: str, path: str, is_dir: bool) -> None:
        change = classify(kind, path, is_dir=is_dir, root=str(self.root), state=self.state_dir)
        if change is None:
            return
        rel = path[len(self.state_dir) + 1 :] if change is Change.RUN else ""
        self.inbox.put(change, rel)

    def wanted_watches(self) -> dict[str, tuple[bool, bool]]:
        root, state = str(self.root), self.state_dir
        wanted = {root: (False, True)}
        for d in CONFIG_DIRS:
            wanted[f"{root}/{d}"] = (True, True)
        wanted[f"{state}/{BOOK_DIR}"] = (False, False)
        wanted[f"{state}/{BOOK_DIR}/{PROC_DIR}"] = (False, False)
        for key in self.live:
            wanted[f"{state}/{key}"] = (True, True)
        return wanted

    # --- deciding whether a wake-up needs a pass ---

    def sift(self, batch: Batch) -> None:
        """Fold a batch into `pending`, dropping the echoes of the watcher's own writes."""
        if batch.config:
            self.pending.config = True
        if batch.exits:
            self.pending.work = True
        if batch.journal and self._journal_pending():
            self.pending.work = True
        state = Path(self.state_dir)
        for rel in batch.runs:
            if self._foreign(state, rel):
                self.pending.work = True
                self.pending.jobs.add(rel.split("/")[1])

    def _journal_pending(self) -> bool:
        from talon.bookkeeping import written_by_others

        try:
            return written_by_others(self.repo.store)
        except OSError:
            return False

    def _foreign(self, state: Path, rel: str) -> bool:
        """Whether a run file differs from what the last pass read or wrote (someone else)."""
        known = self.seen.get(rel)
        if known is None:
            return True
        try:
            return (state / rel).read_text("utf-8") != dumps(known)
        except (OSError, UnicodeDecodeError):
            return True

    # --- the loop ---

    def settle(self) -> None:
        """Let a burst of events end (a quiet gap), within `MAX_SETTLE_S`."""
        start = time.monotonic()
        while not self.stopping and time.monotonic() - start < MAX_SETTLE_S:
            quiet = CONFIG_QUIET_S if self.inbox.has_config() else STATE_QUIET_S
            if not self.inbox.wait(quiet):
                return

    def stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = signal.Signals(signum).name
        self.inbox.poke()

    def loop(self) -> None:
        self.run_pass("start")
        while not self.stopping:
            wanted = self.pending.config or self.pending.work
            deadline = min(self.wake.at, self.hold_until) if wanted else self.wake.at
            if self.inbox.wait(deadline - time.time()):
                self.settle()
            if self.stopping:
                return
            self.sift(self.inbox.take())
            now = time.time()
            if now < self.hold_until:
                continue
            timer = now >= self.wake.at
            if not (timer or self.pending.config or self.pending.work):
                continue
            full = timer and self.wake.why == "full pass"
            if self.pending.config or full:
                self.reload()
            why = self.wake.why if timer and not self.pending.work else "change"
            self.run_pass(why)

    def reload(self) -> None:
        """Re-read the configuration if any of its files changed; keep the last valid one."""
        self.pending.config = False
        fingerprint = config_fingerprint(self.root)
        if fingerprint == self.fingerprint:
            if self.watches is not None:
                self.watches.arm(self.wanted_watches())
            return
        self.fingerprint = fingerprint
        from talon.repo import Repo
        from talon.speccache import load_spec_cached

        try:
            spec, problems = load_spec_cached(self.repo.root)
        except Exception as exc:
            spec, problems = (
                None,
                [_problem(f"cannot load the configuration: {type(exc).__name__}: {exc}")],
            )
        if spec is None or problems:
            for p in problems:
                print(p, file=self.err, flush=True)
            self.problem(
                f"the configuration has {len(problems)} problem(s); keeping the last valid one "
                f"({len(self.repo.spec.jobs)} jobs)"
            )
            return
        self.repo = Repo(self.repo.root, spec, open_store(spec.config))
        self.state_dir = str(self.repo.store.root.resolve())
        self.log(datetime.now(UTC), "reload", "", "", f"{len(spec.jobs)} jobs")
        if self.watches is not None:
            self.watches.arm(self.wanted_watches())

    def run_pass(self, why: str) -> None:
        from talon.passes import Pass

        reap_children()
        changed, self.pending = self.pending.jobs, Pending(config=self.pending.config)
        now = datetime.now(UTC)
        p = Pass(
            self.repo.spec,
            self.repo.store,
            now,
            environ=dict(self.environ),
            changed_jobs=set(changed),
        )
        try:
            decisions = p.run()
        except Exception as exc:
            self.failures += 1
            pause = backoff_s(self.failures, self.full_pass_s)
            self.problem(
                f"the pass ({why}) failed: {type(exc).__name__}: {exc}; next try in {pause:g}s"
            )
            self.hold_until = now.timestamp() + pause
            self.wake = Wake(self.hold_until, "retry")
            return
        self.failures = 0
        for text in p.problems:
            self.problem(text)
        for d in decisions:
            self.log_decision(now, d)
        self.after_pass(p, now.timestamp())

    def after_pass(self, p: Pass, at: float) -> None:
        assert p.view is not None
        spec = self.repo.spec
        self.seen = dict(p.view.overlay)
        cursors = p.book.cursors
        due: dict[str, float | None] = {}
        for name in spec.jobs:
            raw = cursors.get(name)
            nd = raw.get("next_due") if isinstance(raw, dict) else None
            due[name] = float(nd) if isinstance(nd, int | float) else None
        runs = [_open_run(r, spec.jobs.get(r.job), p.book.checked.get(r.id)) for r in p.view.open()]
        self.wake = next_wake(at, due, runs, self.full_pass_s)
        live = {r.period_key for r in p.view.open()}
        if live != self.live:
            self.live = live
            if self.watches is not None:
                self.watches.arm(self.wanted_watches())

    def run(self) -> int:
        with watcher_lock(self.repo.store) as holder:
            if holder is not None:
                self.problem(f"another watcher is running on {self.root} (pid {holder})")
                return 1
            (self.repo.store.book / PROC_DIR).mkdir(parents=True, exist_ok=True)
            previous = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
            try:
                try:
                    self.watches = Watches(self.on_event, self.problem)
                    self.watches.arm(self.wanted_watches())
                except OSError as exc:  # no inotify instance left: time and the periodic pass only
                    self.problem(f"cannot watch files ({exc}); reacting on time only")
                jobs, every = len(self.repo.spec.jobs), self.full_pass_s
                detail = f"{self.root}: {jobs} jobs, full pass every {every:g}s"
                self.log(datetime.now(UTC), "watch", "", "", detail)
                self.loop()
                self.log(
                    datetime.now(UTC), "stop", "", "", f"{self.stopping}: running jobs keep running"
                )
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)
                if self.watches is not None:
                    self.watches.stop()
                self.inbox.close()
        return 0


def reap_children() -> None:
    """Collect the wrappers of runs this watcher started and another process settled, so they
    do not linger as zombies. Called between passes: then the only children are run wrappers,
    which record their exit status in a file before they exit (nothing is lost by reaping)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _open_run(run: Run, job: Job | None, checked: float | None) -> OpenRun:
    poll_s = float(job.poll_s) if job is not None else 60.0
    deadline = None
    if run.state is State.RUNNING and job is not None and job.timeout_s is not None and run.started:
        with contextlib.suppress(ValueError):
            deadline = datetime.fromisoformat(run.started).timestamp() + float(job.timeout_s)
    elif run.state in (State.BLOCKED, State.READY) and job is not None:
        from talon.constraints import start_by_deadline

        with contextlib.suppress(ValueError, KeyError):
            start_by = start_by_deadline(run, job)  # (past it the run fails, poll or not)
            deadline = start_by.timestamp() if start_by is not None else None
    return OpenRun(run.id, run.state, poll_s, checked, deadline)


def _problem(message: str) -> Problem:
    from talon.problems import Problem

    return Problem(CONFIG_FILE, 0, 0, message)


def watch(
    repo: Repo,
    environ: Mapping[str, str],
    *,
    full_pass_s: float = 60.0,
    json_lines: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Watch until SIGTERM or SIGINT (0); 1 when another watcher holds the repository."""
    watcher = Watcher(
        repo,
        environ,
        full_pass_s=full_pass_s,
        json_lines=json_lines,
        out=out or sys.stdout,
        err=err or sys.stderr,
    )
    return watcher.run()
