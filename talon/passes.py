"""One reconcile pass: collect, fire, check, dispatch. The shell around the pure decisions.

Overlap safety: a pass holds the repository's pass lock (in `state/.talon/locks/runs.lock`)
while it decides and records, so passes from cron, CI and `talon watch` run one after another
and every trigger becomes one run and every run is dispatched at most once. Commands that
touch a single run (progress, artifact, cancel) take only that job's lock, and every write
re-reads the file under it. A pass killed at any instant leaves readable files: intent is
written before a dispatch, and the next pass settles what was in flight (see `collect`).

With `dry_run`, the same pass writes nothing and starts nothing: that is `talon plan`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from talon import bookkeeping
from talon.constraints import Check, PluginFn, Verdict, combine, evaluate
from talon.executors.base import (
    Executor,
    Finished,
    Handle,
    Lost,
    Running,
    Status,
    Submission,
    SubmitRefused,
)
from talon.faults import crash_point
from talon.markers import parse_markers
from talon.model import Job, Spec
from talon.placeholders import PlaceholderError, substitute, values_for
from talon.plan import (
    Decision,
    due_fires,
    first_cursor,
    next_attempt,
    period_for,
    refresh_cursor,
    run_after_upstream,
    run_for_fire,
    settle,
)
from talon.resources import Grant, allocate
from talon.runs import OPEN_STATES, Run, State, iso
from talon.secrets import SecretError, resolve
from talon.store import CorruptRun, FileStore, run_id_for
from talon.triggers import AfterTrigger

PASS_LOCK = "@pass"
# Executors whose `adopt` finds every run they started (by process table, job name): for these a
# run they cannot find was never started. SSH cannot tell (the host may be unreachable).
ADOPT_RELIABLE = frozenset({"local", "inprocess", "sge", "slurm"})
UNSTARTED_GRACE_S = 5.0
GROUP_COMMIT_S = 0.1  # the longest a pass's records wait for a sync inside a longer batch
# `reconcile --wait`: how long the file of a run this process started may wait (see _defer):
# short, as the job itself may be waiting for it (`talon progress` from its first moment).
DEFER_S = 0.1
# `reconcile --wait`: how long the file of a run it created blocked, or ready and not started,
# may wait (see create). Nobody but people look for those (with ls, grep; `talon status`,
# `show` and `explain` find them in the index log meanwhile), and a chain that moves faster
# writes each of its runs once.
WAITING_S = 1.0
# `reconcile --wait`: how long a pass may go on from the last one's view of the open runs
# before it reads them again (see load): what goes unseen meanwhile is a cancel or a progress
# report made by another process, which each write sees anyway.
RELOAD_S = 1.0
# A process starts a new shared status file past this size (`talon watch` lives long).
STATUS_FILE_BYTES = 1 << 20
# (state directory, run id) -> (job, submission) for the runs this process dispatched: a pass
# polling one of them needs no new one (the job is the same object while the spec is).
_SUBMISSIONS: dict[tuple[str, str], tuple[Job | None, Submission]] = {}
# Per state directory: the name of this process's shared status file (see _shared_status).
_STATUS_NAMES: dict[str, str] = {}
_HOST = os.uname().nodename  # socket.gethostname(), without importing socket (1.5 ms)
# Executors whose runs are processes of this host: a power cut ends them with the pass.
_DIES_WITH_HOST = frozenset({"local", "inprocess"})


@dataclass
class PassView:
    """The constraint view over the store, with this pass's own changes folded in.

    Besides the open runs by job, it keeps those ready and running, and the jobs with a
    blocked run noted since `check` last looked: the passes of a `reconcile --wait` reuse one
    view, and a long chain would otherwise cost a walk over every open run at each pass."""

    store: FileStore
    overlay: dict[str, Run] = field(default_factory=dict)  # relpath -> run (dry-run and cache)
    _listing: dict[tuple[str, str], list[Run]] = field(default_factory=dict)
    _noted: dict[tuple[str, str], dict[str, Run]] = field(default_factory=dict)
    open_by_job: dict[str, dict[str, Run]] = field(default_factory=dict)
    ready: dict[str, Run] = field(default_factory=dict)  # run id -> run
    running: dict[str, Run] = field(default_factory=dict)
    open_paths: dict[str, str] = field(default_factory=dict)  # run id -> its relpath, if open
    touched: set[str] = field(default_factory=set)  # jobs with a blocked run noted since
    # (spec, timestamp): until then, with that spec, no blocked run is due a check that `check`
    # does not find through `touched`, the ready runs or the jobs that changed (see check).
    calm: tuple[Spec, float] | None = None
    problems: list[str] = field(default_factory=list)

    def runs_in(self, period_key: str, job: str) -> Sequence[Run]:
        key = (period_key, job)
        if key not in self._listing:
            self._listing[key] = list(
                self.store.runs_in(
                    period_key, job, on_corrupt=lambda e: self.problems.append(str(e))
                )
            )
        runs = {r.id: r for r in self._listing[key]}
        runs.update(self._noted.get(key, {}))
        return sorted(runs.values(), key=lambda r: (r.created, r.attempt, r.id))

    def open_runs(self, job: str) -> Sequence[Run]:
        return list(self.open_by_job.get(job, {}).values())

    def open(self) -> Iterator[Run]:
        for by_job in self.open_by_job.values():
            yield from by_job.values()

    def note(self, run: Run) -> None:
        rel = f"{run.period_key}/{run.job}/{run.id}.json"
        self.overlay[rel] = run
        self._noted.setdefault((run.period_key, run.job), {})[run.id] = run
        by_job = self.open_by_job.setdefault(run.job, {})
        self.ready.pop(run.id, None)
        self.running.pop(run.id, None)
        state = run.state
        if state in OPEN_STATES:
            by_job[run.id] = run
            self.open_paths[run.id] = rel
            if state is State.READY:
                self.ready[run.id] = run
            elif state is State.RUNNING:
                self.running[run.id] = run
            else:
                self.touched.add(run.job)
        else:
            by_job.pop(run.id, None)
            self.open_paths.pop(run.id, None)

    def drop(self, run: Run) -> None:
        """Forget an open run this pass noted but does not own after all (someone else's)."""
        self.open_by_job.get(run.job, {}).pop(run.id, None)
        self.open_paths.pop(run.id, None)
        self.ready.pop(run.id, None)
        self.running.pop(run.id, None)


@dataclass
class Pass:
    spec: Spec
    store: FileStore
    now: datetime
    dry_run: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    decisions: list[Decision] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    book: bookkeeping.Book = field(default_factory=bookkeeping.Book)
    view: PassView | None = None
    _executors: dict[str, Executor] = field(default_factory=dict)
    _plugins: dict[str, PluginFn] | None = None
    _revision: dict[str, Any] | None = None
    _revision_read: bool = False
    changed_jobs: set[str] = field(default_factory=set)
    clock: Callable[[], datetime] | None = None
    # Rewrite the index at the end (a process's last pass) rather than append to its log.
    checkpoint: bool = False

    @property
    def _abs_root(self) -> str:
        return _absolute(self.spec.config.root)

    @property
    def _abs_state(self) -> str:
        return _absolute(self.store.root)

    # Runs born ready in this pass and not yet written (see create_checked).
    pending: dict[str, Run] = field(default_factory=dict)
    # Changes decided and not yet written: run id -> (the run as changed, the changes).
    held: dict[str, tuple[Run, list[Callable[[Run], Run | None]]]] = field(default_factory=dict)
    # Ends collected and decided, written after the dispatch step (see _apply_end), and the
    # job locks held until then.
    ends: list[tuple[Run, Callable[[Run], Run | None]]] = field(default_factory=list)
    _end_locks: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    # `reconcile --wait`: the runs this process started whose file waits (see _Deferred),
    # shared by its passes. None: every file is written in the pass that changed it.
    deferred: dict[str, _Deferred] | None = None
    # `reconcile --wait`: the view the last pass of this process left, for the next to go on
    # from (see load). None: every pass reads the open runs.
    carry: Carry | None = None
    _began: float = field(default_factory=time.monotonic)
    _status_path: Path | None = None  # this pass's shared status file, once chosen

    # --- the pass ----------------------------------------------------------------------------

    def run(self) -> list[Decision]:
        if self.dry_run:
            return self._steps()
        self.store.ensure()
        with self.store.locked(PASS_LOCK, timeout=300), self.store.batched() as outermost:
            if self.clock is not None:
                self.now = self.clock()  # the clock is read once the lock is ours
            from talon.quiet import forget

            forget(self.spec.config.root)  # a pass that dies leaves no stale shortcut
            self.store.wal = self._log_written
            self.store.on_synced = self._mark_synced
            try:
                try:
                    decisions = self._steps()
                except BaseException:
                    if self.carry is not None:
                        self.carry.view = None  # half a pass: the next reads afresh
                        self.carry.book = None
                    raise
                if outermost:
                    self.store.sync()  # here, not at the batch's end: the log gets its mark
                    self._prune_shared_status()
                else:
                    # Inside a longer batch (`reconcile --wait`): a power cut rolls back at most
                    # this much of what the passes recorded (jobs that finished, among others).
                    self.store.sync_if_older(GROUP_COMMIT_S)
                return decisions
            finally:
                self.store.wal = None
                self.store.on_synced = None

    def _prune_shared_status(self) -> None:
        """Remove the shared status files no open run names any more (their runs' outcomes
        are durable: this follows a sync). This process's own goes too at its last pass."""
        if self.store.lock_mode != "flock" or self.view is None:
            return
        from talon.executors.local import prune_shared_status

        open_runs = [r for by_job in self.view.open_by_job.values() for r in by_job.values()]
        named = shared_status_named(open_runs)
        # A running run without a handle (its pass died before recording it, and `adopt` has
        # not found it yet) may have its status in any dead process's file.
        unsure = any(
            r.state is State.RUNNING and not (r.executor or {}).get("handle") for r in open_runs
        )
        current = None if self.checkpoint else _STATUS_NAMES.get(str(self.store.book))
        prune_shared_status(self.store.book / "proc", named, current, others=not unsure)

    def _shared_status(self) -> Path | None:
        """The status file the local runs this process starts share (local.py), while the
        state directory is this host's alone: appends from several hosts over NFS may tear."""
        if self.store.lock_mode != "flock":
            return None
        if self._status_path is not None:
            return self._status_path
        key = str(self.store.book)
        name = _STATUS_NAMES.get(key)
        if name is None or self._status_full(self.store.book / "proc" / name):
            from talon.executors.local import shared_status_name

            name = shared_status_name(generation=_next_generation(name))
            _STATUS_NAMES[key] = name
        self._status_path = self.store.book / "proc" / name
        return self._status_path

    def _status_full(self, path: Path) -> bool:
        """Whether a long-lived process (`talon watch`) should start a new status file: looked
        at once per pass, past STATUS_FILE_BYTES (its runs prune the old one when they end)."""
        try:
            return os.stat(path).st_size > STATUS_FILE_BYTES
        except FileNotFoundError:
            return False

    def _mark_synced(self) -> None:
        bookkeeping.mark_synced(self.store)

    def _log_written(self, path: Path, text: str) -> None:
        root = self._state_prefix
        rel = str(path)[len(root) :] if str(path).startswith(root) else None
        if rel is not None:
            bookkeeping.log_written(self.store, rel, text)

    @functools.cached_property
    def _state_prefix(self) -> str:
        return f"{self.store.root}/"

    def _steps(self) -> list[Decision]:
        return self.steps_on_loaded(self.load())

    def load(self) -> list[Run]:
        """The bookkeeping and the open runs, as a pass (or `explain`) sees them."""
        carry = self.carry
        held = carry is not None and carry.book is not None
        if carry is not None and carry.book is not None:
            self.book = carry.book  # the lock was held since the pass that left it
            self.book.foreign = False
        else:
            self.book = bookkeeping.load(self.store)
            self.problems.extend(self.book.problems)
        if (
            carry is not None
            and carry.view is not None
            and not self.book.foreign
            and time.monotonic() - carry.since < RELOAD_S
        ):
            # Only this process changed the book since its last pass: no other pass, trigger
            # or retry wrote a run. Its view still holds; a cancel or a progress report (which
            # do not go through the book) is met by each write's re-read under the job's lock,
            # and the view is read afresh every RELOAD_S.
            self.view = carry.view
            self.view.problems = self.problems
            if not held:
                self._check_deferred()  # (with the lock held throughout, nobody wrote one)
            # Those `collect` looks at, in the order a full read gives.
            return [run for _, run in sorted((self._rel(r), r) for r in self.view.running.values())]
        self.view = PassView(self.store, problems=self.problems)
        if carry is not None:
            carry.view, carry.since = self.view, time.monotonic()
        self._write_unwritten()
        self._check_deferred()
        return self._load_open()

    def _check_deferred(self) -> None:
        """Forget the deferred files someone wrote meanwhile (a pass restoring one from the
        log, `talon cancel`): the file rules. A run cancelled before its handle was on disk
        could not be stopped by the canceller, so it is stopped here."""
        for rel, d in list((self.deferred or {}).items()):
            if self._untouched(rel, d):
                continue
            current = self._settle_deferred(rel, d)
            if current is None:
                continue
            if d.waiting:
                self.book.checked.pop(d.run.id, None)  # written by someone else: check it
            if self.view is not None:
                self.view.note(current)  # (a view carried over still holds this process's copy)
            self.changed_jobs.add(current.job)  # (a cancel: what waits on it may move)
            if d.run.state is State.RUNNING and (
                current.state is not State.RUNNING or current.dispatch != d.run.dispatch
            ):
                self._stop(d.run, "cancelled while its record was pending")

    def _untouched(self, rel: str, d: _Deferred) -> bool:
        """Whether the file of a deferred run is as this process left it (none, or its own)."""
        path = self.store.path_at(rel)
        return self.store.unchanged(path) if d.on_disk else not os.path.exists(path)

    def _settle_deferred(self, rel: str, d: _Deferred) -> Run | None:
        """The file of a deferred run changed behind this process (a progress report, a pass
        restoring it from the log, a cancel): the file rules from now on. While it still
        holds this process's start, it gets the handle if it lacks it. None: unreadable."""
        assert self.deferred is not None
        del self.deferred[rel]
        path = self.store.path_at(rel)
        try:
            with self.store.locked(d.run.job):
                return self.store.update(path, _handle_of(d.run), durable=False)
        except (FileNotFoundError, CorruptRun):
            return None

    def _write_unwritten(self) -> None:
        """Runs in the index log whose file is missing (fired by a pass that died before
        writing them) or damaged (written without fsync just before a power cut, see
        FileStore.wal): written from the log. A readable file is left as it is."""
        if self.dry_run:
            return
        for rel, text in sorted(self.book.unwritten.items()):
            if self.deferred and rel in self.deferred:
                continue  # this process's own run, whose file waits (not a pass that died)
            path = self.store.path_at(rel)
            try:
                if rel in self.book.fresh:
                    self.store.read(path)  # written since the last sync: may be torn
                elif not os.path.exists(path):  # on disk whole at a sync since, if there
                    raise FileNotFoundError(path)
                del self.book.unwritten[rel]
                continue
            except FileNotFoundError:
                # (Or a `reconcile --wait` of another process keeps its file back: the same
                # line, and the same file it would write.)
                why = "written from the index log: its pass died, or keeps its file back"
            except CorruptRun as exc:  # moved aside by the read: nothing is lost
                self.problems.append(str(exc))
                if rel not in self.book.fresh:
                    # On disk whole at a sync since: damaged later, not by a power cut, and the
                    # logged copy may be older than what the file held (a cancel). Voided, so
                    # that no later pass takes the file's absence for a run never written.
                    del self.book.unwritten[rel]
                    bookkeeping.forget_written(self.store, rel)
                    continue
                why = "restored from the index log after its file was found damaged"
            run = bookkeeping.logged_copy(text)
            if run is None:
                continue
            if self.store.create(run):
                del self.book.unwritten[rel]
                self.book.checked.pop(run.id, None)  # what it waits for may have happened
                self.decide("recover", run, why)

    def steps_on_loaded(self, runs: Sequence[Run] | None = None) -> list[Decision]:
        """The steps on an already loaded book and view (a simulation's later steps reuse them)."""
        assert self.view is not None
        if runs is None:
            runs = [r for by_job in self.view.open_by_job.values() for r in by_job.values()]
        with self._end_locks:
            self.collect(runs)
            self.fire()
            self.check()
            self.dispatch()
            # Runs born ready and not started get their file before the ends that caused them
            # (an upstream's success) are written: a pass dying in between leaves the upstream
            # running on disk, so the next pass settles it and fires the dependant again.
            self._flush_pending()
            self._write_ends()
        if self.deferred and not self.view.ready and not self.view.running:
            # The last pass of a `--wait`: what is left waits for something that is not
            # going to happen within it.
            self._flush_deferred(everything=True)
        self._flush_deferred()
        self._prepare_spares()
        if not self.dry_run:
            assert self.view is not None
            open_paths = self.view.open_paths
            self.book.open = set(open_paths.values())
            self.book.keep_cursors(self.spec.jobs)
            checked = self.book.checked
            if any(k not in open_paths for k in checked):
                self.book.checked = {k: v for k, v in checked.items() if k in open_paths}
            for rel, d in (self.deferred or {}).items():
                if d.stale:
                    # A waiting run's line is what another pass, or the next after a kill,
                    # writes its file from: it says what the run waits for. Once per pass,
                    # and only if it did not start meanwhile (_mark logs the start). Nobody
                    # reads the log before the pass lock goes.
                    d.stale = False
                    d.text = json.dumps(d.run.to_json())
                    bookkeeping.journal_fired(self.store, rel, d.text)
                if not d.on_disk:
                    # Its line in the index log is its only record until its file is written:
                    # a checkpoint (which empties the log) must carry it over.
                    self.book.unwritten[rel] = d.text
                    self.book.fresh.add(rel)
            crash_point("pass.before_book")
            if self.carry is not None and self.carry.holding:
                self.carry.book, self.carry.last = self.book, self  # saved by release_book
            else:
                bookkeeping.save(self.store, self.book, checkpoint=self.checkpoint)
                self._record_quiet()
        return self.decisions

    def _record_quiet(self) -> None:
        if self.book.open:
            return  # not quiet: `forget` at the start of the pass already said so
        from talon.quiet import record

        dues = [c.get("next_due") for c in self.book.cursors.values()]
        due = min((d for d in dues if isinstance(d, float | int)), default=None)
        record(
            self.spec.config.root,
            self.store.root,
            any_open=bool(self.book.open),
            next_due=due,
            at=self.now.timestamp(),
        )

    def _rel(self, run: Run) -> str:
        return f"{run.period_key}/{run.job}/{run.id}.json"

    def _load_open(self) -> list[Run]:
        assert self.view is not None
        out = []
        for rel in sorted(self.book.open):
            path = self.store.path_at(rel)
            pending = self.deferred.get(rel) if self.deferred else None
            try:
                run = pending.run if pending is not None else self.store.read(path)
            except FileNotFoundError:
                # A dry run (plan, explain) writes nothing: it sees a run a `reconcile --wait`
                # keeps back as the index log holds it (a pass would write it from there).
                text = self.book.unwritten.get(rel) if self.dry_run else None
                logged = bookkeeping.logged_copy(text) if text else None
                if logged is None:
                    continue
                run = logged
            except CorruptRun as exc:
                self.problems.append(str(exc))
                continue
            if run.state in OPEN_STATES:
                self.view.note(run)
                out.append(run)
        return out

    def decide(self, action: str, run: Run, detail: str = "") -> None:
        self.decisions.append(Decision(action, run.job, run.id, detail))

    # --- writing (or, in a dry run, remembering) ---------------------------------------------

    def create_checked(
        self, run: Run, action: str, detail: str, *, deferrable: bool = False
    ) -> Run | None:
        """Create a new run already in the state its constraints give it (one write, not two),
        and say so; None when another pass created it first.

        `deferrable` (runs of timed and `after` triggers): a run born ready is kept in memory
        and only recorded when this pass dispatches it (its intent, in the index log) or, if it
        must wait, when the dispatch step is over (its file). Nothing durable says it was fired
        until then — the cursor is saved at the end of the pass and an upstream's end after
        the dispatch step — so a pass dying first leaves its trigger to fire again.
        """
        assert self.view is not None
        job = self.spec.jobs[run.job]
        plugins = self.plugins() if job.constraints.plugins else {}
        checks = evaluate(run, job, self.spec, self.view, self.now, plugins)
        state, reason = combine(checks)
        first = run.but(
            state=state,
            reason=reason,
            checks=tuple(c.as_json(self.now) for c in checks),
            finished=iso(self.now) if state.terminal else None,
            history=({"at": iso(self.now), "state": state.value, "reason": reason},),
        )
        if deferrable and state is State.READY and not self.dry_run:
            if self.store.path_of(first).exists() or (
                self.deferred and self._rel(first) in self.deferred
            ):
                return None
            self.pending[first.id] = first
            self.view.note(first)
        elif not self.create(first):
            return None
        if not self.dry_run:
            self.book.checked[first.id] = self.now.timestamp()
        self.decide(action, first, detail)
        self._decide_state(first)
        return first

    def _decide_state(self, run: Run) -> None:
        action = {
            State.READY: "ready",
            State.BLOCKED: "block",
            State.SKIPPED: "skip",
            State.FAILED: "fail",
        }.get(run.state, run.state.value)
        self.decide(action, run, run.reason or "")

    def create(self, run: Run) -> bool:
        assert self.view is not None
        rel = self._rel(run)
        if self.dry_run:
            if rel in self.view.overlay or self.store.path_of(run).exists():
                return False
            self.view.note(run)
            return True
        deferred = self.deferred
        if deferred is not None and self._may_wait_unwritten(run):
            if rel in deferred or os.path.exists(self.store.path_at(rel)):
                return False
            text = json.dumps(run.to_json())
            bookkeeping.journal_fired(self.store, rel, text)
            crash_point("create.after_journal")
            deferred[rel] = _Deferred(run, time.monotonic(), False, text)
            self.view.note(run)
            self.changed_jobs.add(run.job)
            return True
        bookkeeping.pass_opened(self.store, rel)
        crash_point("create.after_journal")
        if not self.store.create(run):
            return False
        crash_point("create.after_file")
        self.view.note(run)
        self.changed_jobs.add(run.job)
        return True

    def _may_wait_unwritten(self, run: Run) -> bool:
        """Whether a new run's file may wait (`reconcile --wait`): a run created blocked, or
        ready and not started, is kept in memory with its line in the index log, and its
        file written when it ends, when DEFER_S has passed, or when nothing is left ready or
        running. In a chain each run is then written once, not created blocked, rewritten
        with its intent and rewritten again at its end. Not on shared storage (lockfile
        mode), where other hosts read the files and not this host's log."""
        return run.state in (State.BLOCKED, State.READY) and self.store.lock_mode == "flock"

    def _waiting(self, rel: str) -> _Deferred | None:
        d = self.deferred.get(rel) if self.deferred else None
        return d if d is not None and d.waiting else None

    def write(
        self,
        run: Run,
        change: Callable[[Run], Run | None],
        *,
        durable: bool = True,
        hold: bool = False,
    ) -> Run:
        """Apply `change` to the current file (re-read under the job's lock).

        `hold`: decide now, write later. A run `check` finds ready is usually started by
        `dispatch` a moment later; holding the change lets one write record both (the held
        changes are replayed on the file as it then is, under its lock, so a cancel in between
        still wins). What is still held after the dispatch step is written then.
        """
        assert self.view is not None
        if self.deferred and self._rel(run) in self.deferred:
            waiting = self._waiting(self._rel(run))
            if waiting is not None:
                # Its file does not exist yet, and none can appear while this pass holds the
                # pass lock (only passes and `talon cancel`, under it, write it from the log).
                old = waiting.run
                new = change(old) or old
                waiting.run = new
                if new.state.terminal:  # (skipped, failed before it started): no reason to wait
                    self._flush_deferred(only=self._rel(run))
                elif new.state is not State.RUNNING and (
                    new.state is not old.state or new.reason != old.reason
                ):
                    waiting.stale = True  # its line is written at the end of the pass
                if new.state is not run.state:
                    self.changed_jobs.add(run.job)
                self.view.note(new)
                return new
            self._flush_deferred(only=self._rel(run))
        held = self.held.pop(run.id, None)
        if run.id in self.pending:
            new = change(self.pending[run.id]) or self.pending[run.id]
            self.pending[run.id] = new
        elif self.dry_run:
            new = change(self.view.overlay.get(self._rel(run), run)) or run
        elif held is None and change(known := self.view.overlay.get(self._rel(run), run)) is None:
            # Nothing to change as far as this pass knows: skip the lock and the read. A file
            # changed behind our back is seen by the next pass.
            new = known
        else:
            changes = [*held[1], change] if held is not None else [change]
            if hold:
                base = held[0] if held is not None else self.view.overlay.get(self._rel(run), run)
                new = change(base) or base
                self.held[run.id] = (new, changes)
            else:
                try:
                    new = self.store.update(
                        self.store.path_of(run), _replay(changes), durable=durable
                    )
                except CorruptRun as exc:
                    self.problems.append(str(exc))
                    return run
        if new.state is not run.state:
            self.changed_jobs.add(run.job)
        self.view.note(new)
        return new

    def _write_held(self) -> None:
        for run_id in list(self.held):
            run = self.held[run_id][0]
            self.write(run, lambda _current: None)

    # --- executors ---------------------------------------------------------------------------

    def executor(self, name: str) -> Executor:
        if name not in self._executors:
            cfg = self.spec.config.executors[name]
            kept = _LOCAL_EXECUTORS.get(name)
            if kept is not None and kept[0] is cfg:
                self._executors[name] = kept[1]
            else:
                from talon.executors.registry import executor_for

                self._executors[name] = executor_for(cfg.type, cfg.options)
                if cfg.type in _DIES_WITH_HOST:
                    # Stateless between calls: the passes of one process share it.
                    _LOCAL_EXECUTORS[name] = (cfg, self._executors[name])
        return self._executors[name]

    def submission(self, run: Run, job: Job, grants: Sequence[Mapping[str, Any]]) -> Submission:
        root = self.spec.config.root
        values = values_for(
            job=job.name, run_id=run.id, period=run.period, params=run.params, resources=grants
        )
        command: str | tuple[str, ...]
        if job.call is not None:
            command = job.call
        elif isinstance(job.command, tuple):
            command = tuple(substitute(a, values, quote=False) for a in job.command)
        else:
            command = substitute(job.command or "", values, quote=True)
        env = {k: substitute(v, values, quote=False) for k, v in job.env.items()}
        env.update(
            {
                "TALON_RUN_ID": run.id,
                "TALON_JOB": job.name,
                "TALON_PERIOD": run.period["key"],
                "TALON_PERIOD_TYPE": run.period["type"],
                "TALON_PERIOD_START": run.period["start"],
                "TALON_PERIOD_END": run.period["end"],
                "TALON_RUN_FILE": os.path.join(self._abs_state, self._rel(run)),
                "TALON_REPO": self._abs_root,
                "TALON_PARAMS": __import__("json").dumps(dict(run.params), sort_keys=True),
            }
        )
        cfg = self.spec.config.executors[job.executor]
        options = {
            k: substitute(v, values, quote=False) if isinstance(v, str) else v
            for k, v in cfg.options.items()
        }
        if job.host is not None:
            options["host"] = substitute(job.host, values, quote=False)
        workdir = root / job.workdir if job.workdir else root
        return Submission(
            run_id=run.id,
            job=job.name,
            command=command,
            env=env,
            log_path=self.store.log_path(run),
            status_dir=self.store.book / "proc",
            shared_status=self._shared_status(),
            workdir=workdir,
            timeout_s=job.timeout_s,
            config=options,
            resources=tuple({"path": g.get("path"), **(g.get("attrs") or {})} for g in grants),
        )

    def submission_for(self, run: Run) -> tuple[Submission, Executor] | None:
        """Rebuild the submission of a running run (its job may have changed or gone)."""
        exec_info = run.executor or {}
        name = str(exec_info.get("name", ""))
        job = self.spec.jobs.get(run.job)
        if name not in self.spec.config.executors:
            return None
        kept = _SUBMISSIONS.get((self._abs_state, run.id))
        if kept is not None and kept[0] is job:
            return kept[1], self.executor(name)  # as dispatched by this process
        if job is None:
            job = _placeholder_job(run, name)
        try:
            sub = self.submission(run, job, run.resources)
        except PlaceholderError:
            sub = Submission(
                run.id, run.job, "", {}, self.store.log_path(run), self.store.book / "proc"
            )
        return sub, self.executor(name)

    # --- 1. collect --------------------------------------------------------------------------

    def collect(self, runs: Sequence[Run]) -> None:
        for run in runs:
            if run.state is not State.RUNNING:
                continue
            job = self.spec.jobs.get(run.job)
            found = self.submission_for(run)
            if found is None:
                self._finish(
                    run,
                    Lost(f"executor '{(run.executor or {}).get('name')}' is no longer configured"),
                )
                continue
            sub, ex = found
            handle = (run.executor or {}).get("handle")
            if handle is None:
                # The pass that dispatched it died between recording intent and the handle.
                adopted = None if self.dry_run else ex.adopt(sub)
                if adopted is None:
                    self._unstarted(run)
                    continue
                run = self.write(run, _with_handle(adopted))  # noqa: PLW2901 - adopted replaces stale
                handle = adopted
                self.decide(
                    "adopt", run, f"found the job submitted by an interrupted pass: {handle}"
                )
            status = self._simulated(run, handle) if self.dry_run else ex.poll(handle, sub)
            timeout = job.timeout_s if job else None
            if isinstance(status, Running) and status.unreachable_since is not None:
                lease = _lease_s(sub.config, timeout)
                gone = (self.now - status.unreachable_since).total_seconds()
                if gone > lease:
                    from talon.durations import format_duration

                    lease_text = format_duration(lease)
                    status = Lost(
                        f"{status.detail}; no contact for longer than the lease ({lease_text})"
                    )
            if isinstance(status, Running) and timeout is not None:
                settled = settle(run, status, self.now, timeout)
                if settled is not None:
                    if not self.dry_run:
                        try:
                            ex.cancel(handle, sub)
                        except Exception as exc:  # unreachable host: still settle the run
                            self.problems.append(
                                f"{run.id}: could not stop it after its timeout: {exc}"
                            )
                    self._apply_end(run, settled, sub)
                continue
            if not isinstance(status, Running):
                self._finish(run, status, sub)

    def simulated_end(self, run: Run) -> datetime | None:
        """When a plan assumes a run it started ends: after the job's expected duration (or
        the median of its past successes). None for runs it did not start: unknown."""
        handle = (run.executor or {}).get("handle") or {}
        if not handle.get("plan") or not run.started:
            return None
        job = self.spec.jobs.get(run.job)
        from datetime import timedelta

        from talon.progress import expected_seconds

        expected = expected_seconds(
            job.expected_duration_s if job else None, self.book.durations.get(run.job, [])
        )
        return datetime.fromisoformat(run.started) + timedelta(seconds=expected or 0)

    def _simulated(self, run: Run, handle: Handle) -> Status:
        end = self.simulated_end(run)
        if end is not None and self.now >= end:
            return Finished(0, "assumed to succeed (plan)")
        return Running()

    def _unstarted(self, run: Run) -> None:
        """A run whose dispatching pass died before recording a handle, and that its executor
        cannot find: not started, so it may go back to ready — but only for executors that can
        find every run they started, and only once the dying pass's submit must have ended."""
        exec_type = str((run.executor or {}).get("type", ""))
        at = (run.dispatch or {}).get("at")
        age = (self.now - datetime.fromisoformat(at)).total_seconds() if at else UNSTARTED_GRACE_S
        if exec_type not in ADOPT_RELIABLE:
            self._finish(run, Lost("dispatched, but the pass died before recording a handle"))
            return
        if age < UNSTARTED_GRACE_S:
            return  # the submit may still be under way; look again next pass

        def back(current: Run) -> Run | None:
            if current.state is not State.RUNNING or (current.executor or {}).get("handle"):
                return None
            return current.transition(
                State.READY,
                self.now,
                "the dispatching pass died before starting it; dispatching again",
                dispatch=None,
                resources=(),
                executor=None,
                started=None,
            )

        new = self.write(run, back)
        if new.state is State.READY:
            self.decide("ready", new, new.reason or "")

    def _finish(self, run: Run, status: Status, sub: Submission | None = None) -> None:
        settled = settle(run, status, self.now, None)
        if settled is not None:
            self._apply_end(run, settled, sub)

    def _apply_end(self, run: Run, settled: Run, sub: Submission | None) -> None:
        if self.dry_run:
            self._settle_end(run, settled, sub)
            return
        # The job's lock from the re-read to the final write: a `talon cancel` lands either
        # before (the run is skipped, nothing follows from it) or after (it finds it ended).
        # The write itself waits until the dispatch step has started what this end set off (a
        # dependant, a retry): in a chain the next job then runs while this one is recorded.
        self._end_locks.enter_context(self.store.locked(run.job))
        self._settle_end(run, settled, sub)

    def _known(self, run: Run) -> Run:
        """The run as its file holds it, or as this process knows it while its file waits."""
        rel = self._rel(run)
        path = self.store.path_of(run)
        pending = self.deferred.get(rel) if self.deferred else None
        if pending is None:
            return self.store.read(path)
        if self._untouched(rel, pending):
            return pending.run
        found = self._settle_deferred(rel, pending)
        if found is None:
            raise FileNotFoundError(path)
        return found

    def _flush_deferred(self, only: str | None = None, *, everything: bool = False) -> None:
        """Write the deferred files whose time is up (DEFER_S after a start, WAITING_S after a
        creation), or that of `only`; `everything`: all, those of this pass too."""
        if not self.deferred:
            return
        now = time.monotonic()
        for rel, d in list(self.deferred.items()):
            if only is not None and rel != only:
                continue
            if only is None and not everything:
                wait = DEFER_S if d.run.state is State.RUNNING else WAITING_S
                if now - d.since < wait or d.since >= self._began:
                    continue  # (a run started by this pass is polled by the next one first)
            del self.deferred[rel]
            try:
                if d.on_disk:
                    self.store.update(self.store.path_at(rel), _handle_of(d.run), durable=False)
                else:
                    self.store.create(d.run)  # False: restored from its log line meanwhile
            except (FileNotFoundError, CorruptRun) as exc:
                self.problems.append(f"{rel}: {exc}")

    def _stop(self, run: Run, why: str) -> None:
        """Stop a run this pass knows started but whose file says it must not run (cancelled
        meanwhile)."""
        found = self.submission_for(run)
        handle = (run.executor or {}).get("handle")
        if found is None or handle is None:
            return
        try:
            found[1].cancel(handle, found[0])
        except Exception as exc:  # an unreachable host: say so, the run stays as its file says
            self.problems.append(f"{run.id}: {why}; stopping it failed: {exc}")

    def _prepare_spares(self) -> None:
        """`reconcile --wait`: after a pass that started local runs, a spare wrapper for the
        next one (talon.executors.local), started while those run: in a chain, the next job
        then starts without a spawn."""
        if self.deferred is None or self.dry_run or self.store.lock_mode != "flock":
            return
        from talon.executors.local import LocalExecutor

        for name in {d.job for d in self.decisions if d.action == "dispatch"}:
            job = self.spec.jobs.get(name)
            executor = self._executors.get(job.executor) if job is not None else None
            if isinstance(executor, LocalExecutor):
                executor.prepare_spare()

    def _finish_ends(self) -> None:
        """Write the ends now and let their jobs' locks go, before a start that may take long
        (ssh, qsub, sbatch, a sync): `talon cancel` or `progress` of those jobs would wait."""
        self._flush_pending()  # first: the runs the ends set off (see steps_on_loaded)
        self._write_ends()
        self._end_locks.close()

    def _write_ends(self) -> None:
        """Write the ends decided by `collect` (their job locks held since the decision, so
        the file is still as it was read)."""
        if self.ends:
            crash_point("pass.before_ends")
        for run, change in self.ends:
            _SUBMISSIONS.pop((self._abs_state, run.id), None)
            path = self.store.path_of(run)
            pending = self.deferred.pop(self._rel(run), None) if self.deferred else None
            try:
                if pending is None:
                    new = self.store.update(path, change)
                elif pending.on_disk:
                    new = self.store.update(path, _replay([_handle_of(pending.run), change]))
                else:
                    final = change(pending.run)
                    if final is not None and self.store.create(final):
                        new = final
                    else:  # restored from the log meanwhile: the end goes on that file
                        new = self.store.update(path, change)
            except CorruptRun as exc:
                self.problems.append(str(exc))
                continue
            if new.state.terminal:
                # Only once the outcome is durable: a power cut before would bring the run
                # back as running, and without its status file it would be taken for lost.
                self.store.when_synced(functools.partial(_prune_status, new))
        self.ends.clear()

    def _settle_end(self, run: Run, settled: Run, sub: Submission | None) -> None:
        job = self.spec.jobs.get(run.job)
        if not self.dry_run:
            # `talon cancel` marks the run skipped before it stops the process: a run whose
            # file no longer says running was cancelled, and its exit must not start a retry
            # or its dependants.
            try:
                current = self._known(run)
            except (FileNotFoundError, CorruptRun):
                return
            if current.state is not State.RUNNING:
                assert self.view is not None
                self.view.note(current)
                if current.state.terminal:
                    _prune_status(current)
                return
        markers = self._markers(sub) if sub is not None else (None, [])
        if settled.state is State.SUCCEEDED:
            self._trigger_dependants(settled)
            crash_point("collect.after_dependants")
        elif settled.state is State.FAILED and job is not None and settled.attempt <= job.retries:
            self._retry(job, settled)

        def change(current: Run) -> Run | None:
            if current.state is not State.RUNNING:
                return None  # someone (talon cancel) settled it meanwhile
            new = current.transition(
                settled.state,
                self.now,
                settled.reason,
                exit_code=settled.exit_code,
                finished=settled.finished,
            )
            progress, artifacts = markers
            if progress is not None:
                new = new.but(progress=progress)
            if artifacts:
                new = new.but(artifacts=(*new.artifacts, *artifacts))
            return new

        if self.dry_run:
            new = self.write(run, change)
        else:
            new = change(current) or current
            self.ends.append((run, change))
            self.changed_jobs.add(run.job)
            assert self.view is not None
            self.view.note(new)
        if new.state is State.SUCCEEDED and new.started:
            self.book.add_duration(
                run.job, (self.now - datetime.fromisoformat(new.started)).total_seconds()
            )
        action = {State.SUCCEEDED: "succeed", State.FAILED: "fail"}.get(new.state, new.state.value)
        self.decide(action, new, new.reason or "")

    def _markers(self, sub: Submission) -> tuple[Mapping[str, Any] | None, list[Mapping[str, Any]]]:
        """Progress and artifacts a job printed as marker lines (remote jobs report this way)."""
        progress: dict[str, Any] | None = None
        artifacts: list[Mapping[str, Any]] = []
        try:
            with open(sub.log_path, encoding="utf-8", errors="replace") as fh:
                for kind, payload in parse_markers(fh):
                    if kind == "progress":
                        from talon.report import merge_progress

                        progress = merge_progress(progress, payload)
                    else:
                        artifacts.append(
                            {
                                "url": payload.get("url"),
                                "name": payload.get("name"),
                                "at": iso(self.now),
                            }
                        )
        except OSError:
            pass
        return progress, artifacts

    def _dependants(self, upstream: str) -> list[Job]:
        return _after_index(self.spec).get(upstream, [])

    def _trigger_dependants(self, upstream: Run) -> None:
        for job in self._dependants(upstream.job):
            run = run_after_upstream(job, upstream, self.now, self.revision())
            # Deferrable (see create_checked): until this pass records it, the upstream's end
            # is not written either, and a pass dying first settles the upstream again.
            self.create_checked(
                run, "create", f"{upstream.job} succeeded ({upstream.id})", deferrable=True
            )

    def _retry(self, job: Job, failed: Run) -> None:
        assert self.view is not None
        existing = self.view.runs_in(failed.period_key, job.name)
        run = next_attempt(job, failed, self.now, existing, "retry-auto")
        detail = f"attempt {run.attempt} of {job.retries + 1} after {failed.id} failed"
        self.create_checked(run, "retry", detail)

    # --- 2. fire -----------------------------------------------------------------------------

    def fire(self) -> None:
        latest: datetime | None = None
        now_ts = self.now.timestamp()
        key = str(self.store.root)
        known = _FIRE_HORIZON.get(key)
        if (
            known is not None
            and known[0] is self.spec
            and known[1] == self.book.cursor_generation
            and known[3] <= now_ts < known[2]
        ):
            return  # the same jobs and cursors as the last walk, and nothing due before then
        for name, job in self.spec.jobs.items():
            raw = self.book.cursors.get(name)
            if raw is not None and raw.get("hash") == job.hash:
                # The common case, checked on raw numbers: most jobs are not due.
                due, at = raw.get("next_due"), raw.get("at")
                if (due is None or due > now_ts) and isinstance(at, float | int) and at <= now_ts:
                    continue
            cursor = self.book.cursor(name)
            if cursor is None:
                cursor = first_cursor(job, self.now)
                self.book.set_cursor(name, cursor)
            elif cursor.hash != job.hash:
                cursor = refresh_cursor(job, cursor.cursor)
                self.book.set_cursor(name, cursor)
            if latest is None or cursor.cursor > latest:
                latest = cursor.cursor
            if cursor.next_due is None or cursor.next_due > self.now:
                continue
            keep, dropped, advanced = due_fires(job, cursor, self.now)
            for fire in keep:
                late = self.now - fire.at
                kind = "catchup" if late.total_seconds() > 300 else _trigger_kind(job)
                run = run_for_fire(job, fire, self.now, kind, self.revision())
                note = f" ({fire.note})" if fire.note else ""
                self.create_checked(
                    run, "create", f"{kind} trigger at {iso(fire.at)}{note}", deferrable=True
                )
            # A fire whose run exists (made by a pass that died before saving its cursor) was
            # not missed.
            dropped = [
                f
                for f in dropped
                if not self.store.run_dir(period_for(job, f.at).key, name)
                .joinpath(f"{run_id_for(name, f.at)}.json")
                .exists()
            ]
            if dropped:
                self.decisions.append(
                    Decision(
                        "missed",
                        name,
                        name,
                        f"{len(dropped)} missed trigger(s) not run (catchup: {job.catchup.value})",
                    )
                )
            self.book.set_cursor(name, advanced)
        if not self.dry_run:
            _FIRE_HORIZON[key] = (self.spec, self.book.cursor_generation, *_horizon(self.book))
        if latest is not None and latest > self.now:
            # Nothing is lost: triggers already processed stay processed, and new ones fire
            # once the clock passes them again.
            self.problems.append(
                f"the clock ({iso(self.now)}) is earlier than the last pass ({iso(latest)}); "
                "no trigger fires until it catches up"
            )

    def revision(self) -> dict[str, Any] | None:
        if not self._revision_read:
            self._revision_read = True
            from talon.revision import git_revision

            self._revision = git_revision(self.spec.config.root, self.spec)
        return self._revision

    # --- 3. check ----------------------------------------------------------------------------

    def plugins(self) -> dict[str, PluginFn]:
        if self._plugins is None:
            from talon.plugins import load_constraint_plugins

            self._plugins, errors = load_constraint_plugins(
                self.spec.config.plugins, self.spec.config.root
            )
            self.problems.extend(errors)
        return self._plugins

    def check(self) -> None:
        """Check the ready runs, and the blocked ones that may have become unblocked: those
        of jobs waiting on a job that changed in this pass, never checked, past their poll
        interval, or with a start-by deadline. Each pass of a long chain would otherwise
        spend most of its time skipping runs nothing has happened to: a view walked once
        remembers (`calm`) until when nothing but those signs can make a check due."""
        view = self.view
        assert view is not None
        now_ts = self.now.timestamp()
        jobs, checked, changed = self.spec.jobs, self.book.checked, self.changed_jobs
        full = view.calm is None or view.calm[0] is not self.spec or now_ts >= view.calm[1]
        if full:
            names: Iterable[str] = list(view.open_by_job)
        else:
            wanted = view.touched | {r.job for r in view.ready.values()}
            wanted.update(n for c in changed for n in _unblocked_by(self.spec).get(c, ()))
            names = [n for n in view.open_by_job if n in wanted]
        calm = float("inf")
        for name in names:
            by_job = view.open_by_job.get(name)
            if not by_job:
                continue
            runs = list(by_job.values())
            if len(runs) > 1:
                runs.sort(key=lambda r: (r.created, r.id))
            job = jobs.get(name)
            if job is None or job.constraints.start_by:
                always, quiet, poll = True, False, 0.0
            else:
                always, quiet, poll = False, changed.isdisjoint(_unblockers(job)), job.poll_s
            for run in runs:
                if run.state is State.BLOCKED:
                    last = checked.get(run.id)
                    if not (quiet and last is not None and now_ts - last < poll):
                        self.check_one(run)
                        last = checked.get(run.id)
                    calm = min(calm, -math.inf if always or last is None else last + poll)
                elif run.state is State.READY:
                    self.check_one(run)
        before = view.calm[1] if view.calm is not None and not full else math.inf
        view.calm = (self.spec, min(calm, before))
        view.touched.clear()  # (check_one noted what it checked: nothing new happened to it)

    def check_one(self, run: Run, dispatched: int = 0) -> Run:
        assert self.view is not None
        job = self.spec.jobs.get(run.job)
        if job is None:
            return self._settle_checked(
                run,
                [Check("schedule", Verdict.CANCEL, f"job {run.job} is no longer in the schedule")],
            )
        if run.state is State.BLOCKED and not job.constraints.start_by:
            last = self.book.checked.get(run.id)
            if (
                last is not None
                and self.now.timestamp() - last < job.poll_s
                and self.changed_jobs.isdisjoint(_unblockers(job))
            ):
                return run  # checked lately, and nothing it waits for has changed since
        plugins = self.plugins() if job.constraints.plugins else {}
        checks = evaluate(run, job, self.spec, self.view, self.now, plugins, dispatched)
        if not self.dry_run:
            self.book.checked[run.id] = self.now.timestamp()
        return self._settle_checked(run, checks)

    def _settle_checked(self, run: Run, checks: Sequence[Check]) -> Run:
        state, reason = combine(checks)
        recorded = _checks_json(run, checks, self.now)

        def change(current: Run) -> Run | None:
            if current.state not in (State.BLOCKED, State.READY):
                return None
            same_checks = [
                (c["constraint"], c["verdict"], c["reason"]) for c in current.checks
            ] == [(c["constraint"], c["verdict"], c["reason"]) for c in recorded]
            if state is current.state and same_checks and reason == current.reason:
                return None
            if state is State.READY is current.state and same_checks:
                return None  # still ready; keep what it is waiting for (executor, resources)
            if state is current.state and reason == current.reason:
                return current.but(checks=tuple(recorded))
            extra: dict[str, Any] = {"checks": tuple(recorded)}
            if state.terminal:
                extra["finished"] = iso(self.now)
            return current.transition(state, self.now, reason, **extra)

        before = run.state
        new = self.write(run, change, hold=state is State.READY)
        if new.state is not before or (new.state is State.BLOCKED and new.reason != run.reason):
            action = {
                State.READY: "ready",
                State.BLOCKED: "block",
                State.SKIPPED: "skip",
                State.FAILED: "fail",
            }.get(new.state, new.state.value)
            self.decide(action, new, new.reason or "")
        return new

    # --- 4. dispatch -------------------------------------------------------------------------

    def dispatch(self) -> None:
        assert self.view is not None
        if not self.view.ready:
            return
        ready = sorted(self.view.ready.values(), key=lambda r: (r.created, r.id))
        running = list(self.view.running.values())
        per_executor: dict[str, int] = {}
        in_use: dict[str, int] = {}
        starts: list[_Start] = []
        for r in running:
            name = str((r.executor or {}).get("name", ""))
            per_executor[name] = per_executor.get(name, 0) + 1
            for g in r.resources:
                in_use[str(g.get("path"))] = in_use.get(str(g.get("path")), 0) + int(
                    g.get("slots", 1)
                )
        for run in ready:
            job = self.spec.jobs.get(run.job)
            if job is None:
                continue
            if job.constraints.max_running is not None:
                rechecked = self.check_one(run)
                if rechecked.state is not State.READY:
                    continue
            cfg = self.spec.config.executors[job.executor]
            limit = cfg.options.get("max_parallel")
            if isinstance(limit, int) and per_executor.get(job.executor, 0) >= limit:
                self._wait(
                    run, f"waiting for executor {job.executor}: {limit} of {limit} runs in progress"
                )
                continue
            grants = allocate(self.spec.resources, job.resources, in_use)
            if isinstance(grants, str):
                self._wait(run, grants)
                continue
            start = self._mark(run, job, grants)
            if start is not None:
                per_executor[job.executor] = per_executor.get(job.executor, 0) + 1
                for grant in grants:
                    in_use[grant.path] = in_use.get(grant.path, 0) + grant.slots
                if self.dry_run or cfg.type in ADOPT_RELIABLE:
                    starts.append(start)
                else:
                    # An executor that cannot find what it started (ssh): a pass dying between
                    # intent and start loses the run, so it is one run at a time, not a batch.
                    self._finish_ends()
                    self.store.sync()
                    crash_point("dispatch.after_intent")
                    self._submit(start)
        self._write_held()  # ready runs not started now: waiting for an executor or resources
        if not starts:
            return
        if not self.dry_run:
            # Group commit: every intent (and whatever led to it) durable with one sync, then
            # the starts. A run refused or failing to start releases nothing the others took:
            # they were granted against the same counts a sequential pass would have used.
            if any(self._outlives_a_crash_here(s.job) for s in starts):
                self._finish_ends()
                self.store.sync()
            crash_point("dispatch.after_intent")
        for start in starts:
            self._submit(start)

    def _flush_pending(self) -> None:
        """Write the runs born ready that are still waiting (executor, resources)."""
        for run_id, run in list(self.pending.items()):
            del self.pending[run_id]
            if not self.create(run):
                assert self.view is not None
                self.view.drop(run)

    def _wait(self, run: Run, reason: str) -> None:
        def change(current: Run) -> Run | None:
            if current.state is not State.READY or current.reason == reason:
                return None
            return current.but(reason=reason)

        new = self.write(run, change)
        if new.reason != run.reason:
            self.decide("wait", new, reason)

    def _outlives_a_crash_here(self, job: Job) -> bool:
        """Whether a run of `job` could survive this host losing power. Only then must its
        intent be on disk before it starts: a local run dies with the host, together with the
        intent still in memory, and the next pass fires its trigger again as if it had never
        been (a kill -9 of the pass loses no intent either: the page cache outlives it). On
        shared storage (lockfile mode, NFS) the files outlive this host, so always."""
        kind = self.spec.config.executors[job.executor].type
        return kind not in _DIES_WITH_HOST or self.store.lock_mode != "flock"

    def _mark(self, run: Run, job: Job, grants: Sequence[Grant]) -> _Start | None:
        """Record the intent to start `run` (running, no handle yet); None if it cannot start.

        A run born ready in this pass and not yet written gets no file here: its intent goes
        to the journal, and the file is created once, with its handle, after the submit (one
        file write per dispatch instead of two). A pass dying in between leaves the journal
        line, from which the next pass writes the run and adopts or restarts it.
        """
        granted = [g.as_json() for g in grants]
        try:
            sub = self.submission(run, job, granted)
            secret_env = resolve(job.secrets, self.spec.config.secrets, self.environ)
        except (PlaceholderError, SecretError) as exc:
            self._fail_ready(run, str(exc))
            return None
        sub = replace(sub, env={**sub.env, **secret_env})
        if len(_SUBMISSIONS) > 10_000:
            _SUBMISSIONS.clear()  # runs settled by other processes never take theirs out
        _SUBMISSIONS[(self._abs_state, run.id)] = (job, sub)
        exec_type = self.spec.config.executors[job.executor].type
        intent = {"at": iso(self.now), "by": f"{_HOST}:{os.getpid()}"}

        def mark(current: Run) -> Run | None:
            if current.state is not State.READY:
                return None
            return current.transition(
                State.RUNNING,
                self.now,
                None,
                started=iso(self.now),
                dispatch=intent,
                resources=tuple(granted),
                executor={"name": job.executor, "type": exec_type, "handle": None},
            )

        marked = self.write(run, mark)
        if marked.state is not State.RUNNING or marked.dispatch != intent:
            return None  # cancelled or taken meanwhile
        rel = self._rel(marked)
        unwritten = self.pending.pop(marked.id, None) is not None
        if not unwritten and self.deferred and rel in self.deferred:
            # Created waiting by this process (see create): no file yet, as for a run born
            # ready. It comes with the handle.
            unwritten = not self.deferred.pop(rel).on_disk
        if unwritten:
            bookkeeping.journal_fired(self.store, rel, json.dumps(marked.to_json()))
        return _Start(marked, job, grants, sub, intent, unwritten)

    def _submit(self, start: _Start) -> bool:
        """Start a marked run (its intent already durable) and record its handle."""
        marked, job, sub = start.marked, start.job, start.sub
        if self.dry_run:
            self.write(marked, _with_handle({"plan": True}))
            self.decide("dispatch", marked, _dispatch_detail(job, start.grants))
            return True
        self.store.makedirs(sub.log_path.parent)
        self.store.makedirs(sub.status_dir)
        try:
            handle: Handle = self.executor(job.executor).submit(sub)
        except SubmitRefused as refused:
            why = refused.reason
            if not self._written(start):
                return False
            if refused.retryable:
                self.write(
                    marked,
                    self._if_ours(
                        start,
                        lambda r: r.transition(
                            State.READY,
                            self.now,
                            f"not started: {why}",
                            dispatch=None,
                            resources=(),
                            executor=None,
                            started=None,
                        ),
                    ),
                )
                self.decide("wait", marked, why)
                return False
            self.write(
                marked,
                self._if_ours(
                    start,
                    lambda r: r.transition(
                        State.FAILED, self.now, f"refused: {why}", finished=iso(self.now)
                    ),
                ),
            )
            self.decide("fail", marked, why)
            return False
        except Exception as exc:  # one broken executor must not stop the pass
            broken = f"could not start: {type(exc).__name__}: {exc}"
            if not self._written(start):
                return False
            self.write(
                marked,
                self._if_ours(
                    start,
                    lambda r: r.transition(State.FAILED, self.now, broken, finished=iso(self.now)),
                ),
            )
            self.decide("fail", marked, broken)
            return False
        crash_point("dispatch.after_submit")
        if self.deferred is not None and self._defer(start, handle):
            self.decide("dispatch", marked, _dispatch_detail(job, start.grants))
            return True
        if start.unwritten:
            recorded = _with_handle(handle)(marked) or marked
            # Not made durable at once: the journal holds the intent until the pass's last sync.
            if self.store.create(recorded):
                assert self.view is not None
                self.view.note(recorded)
            else:
                recorded = marked.but(dispatch=None)  # someone else's run: not ours to own
        else:
            # Not made durable: if a power cut rolls it back, the next pass adopts the run.
            recorded = self.write(marked, _with_handle(handle), durable=False)
        if recorded.state is not State.RUNNING or recorded.dispatch != start.intent:
            # Cancelled between our intent and the start: stop what we just started.
            self._stop(_with_handle(handle)(marked) or marked, "cancelled while starting")
            return False
        self.decide("dispatch", marked, _dispatch_detail(job, start.grants))
        return True

    def _defer(self, start: _Start, handle: Handle) -> bool:
        """Keep the started run's file for later (`reconcile --wait`, local executors): most
        runs end within DEFER_S, and then one write records the whole run, instead of a write
        with the handle now and a rewrite at the end (each a file created, on these disks the
        dearest part of a run). The handle goes to the index log at once, so a pass that
        finds the file missing (this process killed) writes it from there; a file with the
        intent but no handle is found by `adopt`. False when the file changed since the mark
        (a cancel): the caller's write sees to it."""
        if self._outlives_a_crash_here(start.job):
            return False  # (and on shared storage, other hosts read the files meanwhile)
        assert self.deferred is not None and self.view is not None
        rel = self._rel(start.marked)
        path = self.store.path_at(rel)
        on_disk = not start.unwritten
        if on_disk and not self.store.unchanged(path):
            return False
        if not on_disk and os.path.exists(path):
            return False
        recorded = _with_handle(handle)(start.marked) or start.marked
        text = json.dumps(recorded.to_json())
        bookkeeping.journal_fired(self.store, rel, text)
        self.deferred[rel] = _Deferred(recorded, time.monotonic(), on_disk, text)
        self.view.note(recorded)
        return True

    @staticmethod
    def _if_ours(start: _Start, change: Callable[[Run], Run | None]) -> Callable[[Run], Run | None]:
        """`change`, applied only while the file still holds this pass's intent: a `talon
        cancel` that landed after the intent was written wins."""

        def guarded(current: Run) -> Run | None:
            if current.state is not State.RUNNING or current.dispatch != start.intent:
                return None
            return change(current)

        return guarded

    def _written(self, start: _Start) -> bool:
        """Give a run whose intent is only in the journal its file (before a failure is
        recorded in it); False when the file exists already and is someone else's."""
        if not start.unwritten:
            return True
        start.unwritten = False
        if self.create(start.marked):
            return True
        assert self.view is not None
        self.view.drop(start.marked)
        return False

    def _fail_ready(self, run: Run, reason: str) -> None:
        self.write(
            run, lambda r: r.transition(State.FAILED, self.now, reason, finished=iso(self.now))
        )
        self.decide("fail", run, reason)


@dataclass
class Carry:
    """What one pass of a `reconcile --wait` hands on to the next (see Pass.load)."""

    view: PassView | None = None
    since: float = 0.0  # time.monotonic() of the view's last full read
    # While `holding` (the caller holds the pass lock between passes, see reconcile._loop),
    # the book is handed on too and saved once, by `release_book`, not by every pass.
    holding: bool = False
    book: bookkeeping.Book | None = None
    last: Pass | None = None

    def release_book(self) -> None:
        """Save what the passes of a held window changed in the book (the caller still holds
        the pass lock)."""
        if self.book is not None and self.last is not None:
            # In a batch of its own when there is no outer one (no syncfs): durable, as the
            # passes' own saves were, with their batch's sync.
            with self.last.store.batched():
                bookkeeping.save(self.last.store, self.book)
            self.last._record_quiet()
        self.book = None
        self.holding = False


@dataclass
class _Deferred:
    """A run this process started, or created to wait, and has not written since (see
    Pass._defer and Pass.create)."""

    run: Run  # running with its handle; or blocked or ready, never started (no file yet)
    since: float  # time.monotonic() at the start or the creation
    on_disk: bool  # its file exists, with the intent and no handle; else no file yet
    text: str  # the run as its last line in the index log holds it
    stale: bool = False  # waiting, and changed since that line (see Pass.write)

    @property
    def waiting(self) -> bool:
        """Created by this process and not started: changes stay in memory until it starts
        (its intent goes to the log then) or its file is written."""
        return not self.on_disk and self.run.state is not State.RUNNING


@dataclass
class _Start:
    """A run marked running (its intent recorded) and about to be submitted."""

    marked: Run
    job: Job
    grants: Sequence[Grant]
    sub: Submission
    intent: Mapping[str, Any]
    unwritten: bool  # its intent is in the journal only; the file comes with the handle


DEFAULT_LEASE_S = 3600.0


def _replay(changes: Sequence[Callable[[Run], Run | None]]) -> Callable[[Run], Run | None]:
    """One change made of several, applied in turn to the file's current run."""

    def change(current: Run) -> Run | None:
        out: Run | None = None
        for step in changes:
            out = step(out or current) or out
        return out

    return change


_AFTER_INDEX: list[tuple[Spec, dict[str, list[Job]]]] = []
# local and inprocess executors by name, with the configuration they were made from.
_LOCAL_EXECUTORS: dict[str, tuple[Any, Executor]] = {}


def close_spares() -> None:
    """Let the spare wrappers of this process's local executors go (end of `--wait`)."""
    from talon.executors.local import LocalExecutor

    for _cfg, executor in _LOCAL_EXECUTORS.values():
        if isinstance(executor, LocalExecutor):
            executor.close_spare()


# Per state directory: (spec, cursor generation, earliest next due, latest cursor time) as the
# last full walk of `fire` left them; while all four hold, no job can be due.
_FIRE_HORIZON: dict[str, tuple[Spec, int, float, float]] = {}


def _horizon(book: bookkeeping.Book) -> tuple[float, float]:
    due, at = float("inf"), float("-inf")
    for raw in book.cursors.values():
        nd, a = raw.get("next_due"), raw.get("at")
        if isinstance(nd, float | int) and nd < due:
            due = nd
        if isinstance(a, float | int) and a > at:
            at = a
        elif not isinstance(a, float | int):
            at = float("inf")  # unknown: never skip on it
    return due, at


_UNBLOCKERS: dict[tuple[str, str], frozenset[str]] = {}


def _unblockers(job: Job) -> frozenset[str]:
    """The jobs whose runs changing can unblock a blocked run of `job` (by definition hash)."""
    key = (job.name, job.hash)
    found = _UNBLOCKERS.get(key)
    if found is None:
        deps = {d.job for d in job.constraints.after}
        if job.constraints.max_running is not None or job.constraints.once_per_period:
            deps.add(job.name)  # a sibling finishing can unblock it
        found = _UNBLOCKERS[key] = frozenset(deps)
    return found


_UNBLOCKED_BY: list[tuple[Spec, dict[str, frozenset[str]]]] = []


def _unblocked_by(spec: Spec) -> dict[str, frozenset[str]]:
    """For each job, the jobs whose blocked runs it can unblock (_unblockers turned round),
    for the last spec seen."""
    if _UNBLOCKED_BY and _UNBLOCKED_BY[0][0] is spec:
        return _UNBLOCKED_BY[0][1]
    index: dict[str, set[str]] = {}
    for job in spec.jobs.values():
        for name in _unblockers(job):
            index.setdefault(name, set()).add(job.name)
    found = {name: frozenset(names) for name, names in index.items()}
    _UNBLOCKED_BY[:] = [(spec, found)]
    return found


def _after_index(spec: Spec) -> dict[str, list[Job]]:
    """Jobs by the job whose success triggers them; kept for the last spec seen, so the passes
    of one `reconcile --wait` or `watch` build it once, not once per pass."""
    if _AFTER_INDEX and _AFTER_INDEX[0][0] is spec:
        return _AFTER_INDEX[0][1]
    index: dict[str, list[Job]] = {}
    for job in spec.jobs.values():
        for t in job.triggers:
            if isinstance(t, AfterTrigger):
                index.setdefault(t.job, []).append(job)
    _AFTER_INDEX[:] = [(spec, index)]
    return index


def _lease_s(config: Mapping[str, Any], timeout_s: float | None) -> float:
    """How long a run may be out of contact before it is lost: the executor's `lease`, else the
    job's timeout, else an hour."""
    from talon.durations import parse_duration

    if config.get("lease") is not None:
        try:
            return parse_duration(config["lease"])
        except ValueError:
            pass
    return timeout_s if timeout_s is not None else DEFAULT_LEASE_S


@functools.lru_cache(maxsize=16)
def _absolute(path: Path) -> str:
    """A directory's resolved path, once per process (it is in every run's environment)."""
    return str(path.resolve())


def _prune_status(run: Run) -> None:
    """A settled local run's status files are scratch under state/.talon/proc: the run file now
    holds the outcome, so they go (see talon.executors.local.prune_status)."""
    if (run.executor or {}).get("type") == "local":
        from talon.executors.local import prune_status

        prune_status((run.executor or {}).get("handle") or {})


def shared_status_named(runs: Iterable[Run]) -> set[str]:
    """The shared status files the handles of `runs` name."""
    named = set()
    for run in runs:
        handle = (run.executor or {}).get("handle") or {}
        if handle.get("key") and isinstance(handle.get("rc_file"), str):
            named.add(str(handle["rc_file"]))
    return named


def _next_generation(name: str | None) -> int:
    if name is None:
        return 0
    stem = name[: -len(".status")]
    return int(stem.rsplit("-", 1)[1]) + 1 if stem.count("-") >= 2 else 1


def _with_handle(handle: Handle) -> Callable[[Run], Run | None]:
    def change(run: Run) -> Run | None:
        return run.but(executor={**(run.executor or {}), "handle": handle})

    return change


def _handle_of(known: Run) -> Callable[[Run], Run | None]:
    """Give the file the handle of `known`, while it still holds the same intent."""

    def change(current: Run) -> Run | None:
        if current.state is not State.RUNNING or current.dispatch != known.dispatch:
            return None
        if (current.executor or {}).get("handle") is not None:
            return None
        return current.but(executor=known.executor)

    return change


def _dispatch_detail(job: Job, grants: Sequence[Grant]) -> str:
    held = ", ".join(g.path for g in grants)
    return f"on {job.executor}" + (f" holding {held}" if held else "")


def _trigger_kind(job: Job) -> str:
    from talon.triggers import CronTrigger

    return "cron" if any(isinstance(t, CronTrigger) for t in job.triggers) else "window"


def _checks_json(run: Run, checks: Sequence[Check], now: datetime) -> list[dict[str, Any]]:
    """Checks to record; an unchanged verdict keeps the time it was first reached (no churn)."""
    before = {
        (c.get("constraint"), c.get("verdict"), c.get("reason")): c.get("at") for c in run.checks
    }
    out = []
    for c in checks:
        rec = c.as_json(now)
        at = before.get((c.constraint, c.verdict.value, c.reason))
        if at is not None:
            rec["at"] = at
        out.append(rec)
    return out


def _placeholder_job(run: Run, executor: str) -> Job:
    """A stand-in for a run whose job was removed from the schedule, so it can be settled."""
    from talon.model import Catchup, Constraints, Source
    from talon.periods import PeriodType
    from talon.triggers import DstPolicy

    return Job(
        name=run.job,
        source=Source("-", 0, 0),
        command="",
        call=None,
        period_type=PeriodType(run.period["type"]),
        period_offset=0,
        timezone="UTC",
        triggers=(),
        dst=DstPolicy(),
        start=None,
        constraints=Constraints(),
        resources=(),
        executor=executor,
        host=None,
        poll_s=60,
        timeout_s=None,
        expected_duration_s=None,
        retries=0,
        catchup=Catchup.NONE,
        max_catchup=0,
        params={},
        env={},
        secrets=(),
        workdir=None,
        description="",
        hash="",
    )
