"""`talon reconcile [--wait]`: one pass (or passes until nothing is ready or running)."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from talon.cli import EXIT_FAILED, EXIT_OK, find_repo, parse_now

if TYPE_CHECKING:
    from talon.passes import Carry
    from talon.plan import Decision
    from talon.repo import Repo

# Imports of the pass itself wait until the no-op shortcut (talon/quiet.py) has said no.


def one_pass(
    repo: Repo,
    now: datetime,
    environ: Mapping[str, str],
    clock: Callable[[], datetime] | None = None,
    checkpoint: bool = False,
    deferred: dict[str, Any] | None = None,
    carry: Carry | None = None,
) -> tuple[list[Decision], list[str], bool]:
    """Run a pass; returns (decisions, problems, whether anything is still ready or running).
    `deferred`: the run files a process's passes keep for later (Pass.deferred)."""
    from talon.passes import Pass

    p = Pass(
        repo.spec,
        repo.store,
        now,
        environ=environ,
        clock=clock,
        checkpoint=checkpoint,
        deferred=deferred,
        carry=carry,
    )
    decisions = p.run()
    assert p.view is not None
    return decisions, p.problems, bool(p.view.ready or p.view.running)


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0


@contextlib.contextmanager
def _wake_on_child_exit() -> Iterator[int | None]:
    """A descriptor that becomes readable when a child of this process exits (SIGCHLD through
    `signal.set_wakeup_fd`): the wrappers this pass started are our children, so `--wait`
    hears each run end at once instead of at its next look. None where signals cannot be
    set (not the main thread). The previous handler and wakeup descriptor come back after."""
    import signal

    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    try:
        before = signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        before_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:
        os.close(r)
        os.close(w)
        yield None
        return
    try:
        yield r
    finally:
        signal.set_wakeup_fd(before_fd)
        signal.signal(signal.SIGCHLD, before if before is not None else signal.SIG_DFL)
        os.close(r)
        os.close(w)


def _drain(wake: int | None) -> None:
    if wake is not None:
        with contextlib.suppress(BlockingIOError):
            while os.read(wake, 4096):
                pass


def _proc_state(proc_dir: Path) -> tuple[int, ...]:
    """What changes when a local run ends: the status directory (a `.rc` file appears) and the
    sizes of the shared status files in it (a line is appended)."""
    try:
        with os.scandir(proc_dir) as entries:
            sizes = [e.stat().st_size for e in entries if e.name.endswith(".status")]
    except FileNotFoundError:
        return ()
    return (_mtime(proc_dir), *sizes)


def _wait_for_change(proc_dir: Path, limit: float, wake: int | None) -> None:
    """Sleep up to `limit` seconds, less if a child exits or a local run's status is written
    (a run started by another process is not our child; the pass itself changes the directory
    too, pruning, so it is sampled from here)."""
    import select

    before = _proc_state(proc_dir)
    deadline = time.monotonic() + limit
    while _proc_state(proc_dir) == before and time.monotonic() < deadline:
        if wake is None:
            time.sleep(0.001)
        elif select.select([wake], [], [], 0.001)[0]:
            return


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    from talon.quiet import is_quiet

    fixed_now = parse_now(args.now) if args.now else None
    if is_quiet(
        find_repo(args.directory, dict(environ)), (fixed_now or parse_now(None)).timestamp()
    ):
        if args.json:
            print("[]")
        return EXIT_OK
    from talon.output import emit_json
    from talon.repo import open_repo

    repo = open_repo(args.directory, environ)
    all_decisions: list[Decision] = []
    wake: int | None = None
    clock = _Clock(fixed_now)

    with contextlib.ExitStack() as stack:
        if args.wait:
            from talon.store import syncfs_available

            if syncfs_available():
                # One group commit across the passes: each pass still syncs before it starts
                # a job, but not again at its end; the last sync is on the way out. Only with
                # syncfs, which also covers what a concurrent pass relies on us having written.
                stack.enter_context(repo.store.batched())
            wake = stack.enter_context(_wake_on_child_exit())
        if args.wait:
            from talon.passes import close_spares

            stack.callback(close_spares)  # (before the wakeup pipe goes: they exit at once)
        failed_any = _loop(args, repo, environ, clock, wake, all_decisions)
        if args.wait:
            _checkpoint(repo)
    if args.json:
        emit_json([d.as_json() for d in all_decisions])
    return EXIT_FAILED if args.wait and failed_any else EXIT_OK


def _checkpoint(repo: Repo) -> None:
    """Leave the index whole on the way out: the passes of `--wait` appended to its log, and
    the next process would replay (and re-check the files of) every line otherwise."""
    from talon import bookkeeping
    from talon.passes import PASS_LOCK

    with repo.store.locked(PASS_LOCK, timeout=300):
        book = bookkeeping.load(repo.store)
        bookkeeping.save(repo.store, book, checkpoint=True)  # after a sync of everything
        if repo.store.lock_mode == "flock":
            from talon.executors.local import prune_shared_status
            from talon.passes import shared_status_named

            named = shared_status_named(bookkeeping.read_open(repo.store, book))
            # Its own files only: another process's may hold the status of a run that only a
            # pass (which restores from the log and adopts) can tie to it.
            prune_shared_status(repo.store.book / "proc", named, current=None, others=False)


class _Clock:
    """The clock of a reconcile: the system's, or with `--now T` exactly T for the first pass
    (a deadline at T has not passed at T), then T plus the real time since that pass, so that
    the runs a `--wait` waits for take the time they take."""

    def __init__(self, fixed: datetime | None) -> None:
        self.fixed = fixed
        self.since: float | None = None

    def __call__(self) -> datetime:
        if self.fixed is None:
            return parse_now(None)
        if self.since is None:
            return self.fixed
        return self.fixed + timedelta(seconds=time.monotonic() - self.since)

    def run_on(self) -> None:
        if self.since is None:
            self.since = time.monotonic()


def _loop(
    args: argparse.Namespace,
    repo: Repo,
    environ: Mapping[str, str],
    clock: _Clock,
    wake: int | None,
    all_decisions: list[Decision],
) -> bool:
    """Passes until nothing is left to wait for (one without --wait); whether a run failed (its
    latest attempt: one retried and then successful did not).

    With --wait, the passes hand on a Carry: the files of runs started and not yet written
    (Pass._defer), the view of the open runs, and while a run of ours has already ended when a
    pass is done (its wakeup there), the pass lock and the book: the next pass follows without
    letting the lock go (up to HOLD_S), and the book is saved once for those passes."""
    from talon.passes import PASS_LOCK, Carry

    deferred: dict[str, Any] | None = {} if args.wait else None
    carry = Carry() if args.wait else None
    # The outcome of each run's latest attempt, by the id of its first: a run that failed
    # and then succeeded on its automatic retry did not fail the --wait.
    outcomes: dict[str, str] = {}
    delay = 0.002
    proc_dir = repo.store.book / "proc"
    window = 0.0
    lock: contextlib.ExitStack | None = None  # the pass lock, while a window holds it

    def release() -> None:
        nonlocal lock
        if lock is not None and carry is not None:
            try:
                carry.release_book()
            finally:
                lock.close()
                lock = None

    try:
        while True:
            if carry is not None and lock is None:
                lock = contextlib.ExitStack()
                lock.enter_context(repo.store.locked(PASS_LOCK, timeout=300))
                carry.holding, window = True, time.monotonic()
            _drain(wake)  # before the pass polls anything: a run of ours ending later wakes us
            decisions, problems, active = one_pass(
                repo,
                clock(),
                environ,
                clock,
                checkpoint=not args.wait,
                deferred=deferred,
                carry=carry,
            )
            clock.run_on()
            for problem in problems:
                print(f"talon reconcile: {problem}", file=sys.stderr)
            all_decisions.extend(decisions)
            if not args.json:
                for d in decisions:
                    print(d, flush=True)
            for d in decisions:
                if d.action in ("succeed", "fail"):
                    outcomes[_first_attempt(d.run)] = d.action
                elif d.action == "skip":  # (a skipped retry does not undo a failure)
                    outcomes.setdefault(_first_attempt(d.run), d.action)
            if not args.wait or not active:
                return "fail" in outcomes.values()
            if decisions and time.monotonic() - window < HOLD_S and _woken(wake):
                continue  # a run of ours has ended already: the next pass, the lock still ours
            release()
            # Back off while nothing changes; start over fast when something does. A local
            # run ending writes its status into state/.talon/proc (a file, or a line in a
            # shared one): watching that wakes us within a millisecond, without a pass per
            # millisecond.
            delay = 0.002 if decisions else min(delay * 2, 0.5)
            _wait_for_change(proc_dir, delay, wake)
    finally:
        release()


# The suffix of a retry's id (plan.next_attempt), and of one made unique (creating.create_unique).
_ATTEMPT = re.compile(r"\.r\d+(-\d+)?$")


def _first_attempt(run_id: str) -> str:
    return _ATTEMPT.sub("", run_id)


# The longest `--wait` keeps the pass lock across passes: another reconcile waits this long.
HOLD_S = 0.05


def _woken(wake: int | None) -> bool:
    import select

    return wake is not None and bool(select.select([wake], [], [], 0)[0])
