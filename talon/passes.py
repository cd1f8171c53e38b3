"""One reconcile pass: collect, fire, check, dispatch. The shell around the pure decisions.

Overlap safety: a pass holds the repository's pass lock (in `state/.talon/locks/runs.lock`)
while it decides and records, so passes from cron, CI and `talon watch` run one after another
and every trigger becomes one run and every run is dispatched at most once. Commands that
touch a single run (progress, artifact, cancel) take only that job's lock, and every write
re-reads the file under it. A pass killed at any instant leaves readable files: intent is
written before a dispatch, and the next pass settles what was in flight (see `collect`).

With `dry_run`, the same pass writes nothing and starts nothing: that is `talon plan`.

The pass is assembled from its steps: talon.pass_collect, pass_fire, pass_check and
pass_dispatch, over the records of pass_recording and pass_deferral, and the state in
pass_state.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from talon import bookkeeping
from talon.faults import crash_point
from talon.pass_deferral import DEFER_S, WAITING_S, Deferred
from talon.pass_dispatch import Dispatching
from talon.pass_fire import Firing
from talon.pass_submitting import STATUS_FILE_NAMES, close_spares
from talon.passview import PassView
from talon.plan import Decision
from talon.runs import OPEN_STATES, Run, State
from talon.store import PASS_LOCK, CorruptRun

__all__ = [
    "DEFER_S",
    "PASS_LOCK",
    "WAITING_S",
    "Carry",
    "Deferred",
    "Pass",
    "PassView",
    "close_spares",
    "shared_status_named",
]


GROUP_COMMIT_S = 0.1  # the longest a pass's records wait for a sync inside a longer batch
# `reconcile --wait`: how long a pass may go on from the last one's view of the open runs
# before it reads them again (see load): what goes unseen meanwhile is a cancel or a progress
# report made by another process, which each write sees anyway.
RELOAD_S = 1.0


class Pass(Dispatching, Firing):
    """One pass: collect, fire, check, dispatch (each step a class of its own module)."""

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

        open_runs = list(self.view.open())
        named = shared_status_named(open_runs)
        # A running run without a handle (its pass died before recording it, and `adopt` has
        # not found it yet) may have its status in any dead process's file.
        unsure = any(
            r.state is State.RUNNING and not (r.executor or {}).get("handle") for r in open_runs
        )
        current = None if self.checkpoint else STATUS_FILE_NAMES.get(str(self.store.book))
        prune_shared_status(self.store.book / "proc", named, current, others=not unsure)

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
        held = False  # whether the pass lock was held since the last pass (see Carry)
        if carry is not None and carry.book is not None:
            held = True
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
            missing = False
            try:
                if rel in self.book.fresh:
                    self.store.read(path)  # written since the last sync: may be torn
                elif not os.path.exists(path):  # on disk whole at a sync since, if there
                    raise FileNotFoundError(path)
                del self.book.unwritten[rel]
                continue
            except FileNotFoundError:
                missing, why = True, "fired by a pass that died before writing it"
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
                if missing and bookkeeping.held_by_the_living(self.book.owners.get(rel)):
                    continue  # kept back by a live `reconcile --wait`: nothing to recover
                self.decide("recover", run, why)

    def steps_on_loaded(self, runs: Sequence[Run] | None = None) -> list[Decision]:
        """The steps on an already loaded book and view (a simulation's later steps reuse them)."""
        assert self.view is not None
        if runs is None:
            runs = list(self.view.open())
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
            for rel in sorted(self.stale):
                d = self.deferred.get(rel) if self.deferred else None
                if d is not None and d.waiting:
                    # A waiting run's line is what another pass, or the next after a kill,
                    # writes its file from: it says what the run waits for. Once per pass,
                    # and only if it did not start meanwhile (_mark logs the start). Nobody
                    # reads the log before the pass lock goes.
                    d.text = json.dumps(d.run.to_json())
                    bookkeeping.journal_fired(self.store, rel, d.text, held=True)
            self.stale.clear()
            if self.deferred is not None:
                # Their lines in the index log are their only record until their files are
                # written: a checkpoint (which empties the log) carries them over.
                self.book.held_back = functools.partial(_held_back, self.deferred)
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


def _held_back(deferred: dict[str, Deferred]) -> dict[str, str]:
    return {rel: d.text for rel, d in deferred.items() if not d.on_disk}


def shared_status_named(runs: Iterable[Run]) -> set[str]:
    """The shared status files the handles of `runs` name."""
    named = set()
    for run in runs:
        handle = (run.executor or {}).get("handle") or {}
        if handle.get("key") and isinstance(handle.get("rc_file"), str):
            named.add(str(handle["rc_file"]))
    return named
