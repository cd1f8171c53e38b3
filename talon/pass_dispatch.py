"""Step 4 of a pass: allocate and dispatch the ready runs, intent first."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from talon import bookkeeping
from talon.executors.base import (
    Handle,
    PendingSubmit,
    Submission,
    SubmitRefused,
)
from talon.faults import crash_point
from talon.model import Job
from talon.pass_check import Checking
from talon.pass_collect import Collecting
from talon.pass_deferral import Deferred
from talon.pass_submitting import ADOPT_RELIABLE, SUBMISSIONS
from talon.placeholders import PlaceholderError
from talon.resources import Grant, allocate
from talon.runchanges import with_handle
from talon.runs import Run, State, iso
from talon.secrets import SecretError, resolve

_HOST = os.uname().nodename  # socket.gethostname(), without importing socket (1.5 ms)


class Dispatching(Checking, Collecting):
    """Dispatching ready runs."""

    def dispatch(self, round_: int = 0) -> None:
        assert self.view is not None
        if not self.view.ready:
            return
        failed: set[str] = set()  # jobs a run of which failed to start in this round
        ready = sorted(self.view.ready.values(), key=lambda r: (r.created, r.id))
        running = list(self.view.running.values())
        starts: list[Start] = []
        # Starts that need no sync before them (local runs die with the host, their intents
        # with them) begin as soon as they are marked, through the spawner threads, so that
        # they run on the other core while the rest are marked.
        with self._starting(failed) as early:
            batch = not self.dry_run and len(ready) >= _SOON_FROM
            self._mark_and_start(ready, running, starts, early if batch else None, failed)
        self._write_held()  # ready runs not started now: waiting for an executor or resources
        if starts:
            self._start_all(starts, failed)
        if failed and round_ < _ROUNDS:
            self._after_failures(failed, round_)

    def _mark_and_start(
        self,
        ready: list[Run],
        running: list[Run],
        starts: list[Start],
        early: deque[tuple[Start, PendingSubmit]] | None,
        failed: set[str],
    ) -> None:
        """Mark what can start (in `ready`'s order), starting local runs at once where `early`
        is given, and leaving the others in `starts`."""
        per_executor: dict[str, int] = {}
        in_use: dict[str, int] = {}
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
            if start is None and self._failed(run):
                failed.add(job.name)
            if start is not None:
                per_executor[job.executor] = per_executor.get(job.executor, 0) + 1
                for grant in grants:
                    in_use[grant.path] = in_use.get(grant.path, 0) + grant.slots
                soon = self._submit_soon(job) if early is not None else None
                if (
                    early is not None
                    and soon is not None
                    and not self._outlives_a_crash_here(job)
                    and not _one_at_a_time(job)
                ):
                    crash_point("dispatch.after_intent")
                    self._start_soon(start, soon, early, failed)
                elif self.dry_run or cfg.type in ADOPT_RELIABLE:
                    starts.append(start)
                else:
                    # An executor that cannot find what it started (ssh): a pass dying between
                    # intent and start loses the run, so it is one run at a time, not a batch.
                    self._finish_ends()
                    self.store.sync()
                    crash_point("dispatch.after_intent")
                    if not self._submit(start) and self._failed(start.marked):
                        failed.add(job.name)

    def _after_failures(self, failed: set[str], round_: int) -> None:
        """A run that failed to start may have held others of its job back (once_per_period
        holds the younger of two ready runs): check those again, and start what is ready now,
        in this pass. The next pass might not come: a `--wait` with nothing ready or running
        ends."""
        assert self.view is not None
        held = [
            r
            for name in sorted(failed)
            for r in self.view.open_runs(name)
            if r.state is State.BLOCKED
        ]
        for run in held:
            self.check_one(run)
        self.dispatch(round_ + 1)

    def _start_all(self, starts: list[Start], failed: set[str]) -> None:
        if not self.dry_run:
            # Group commit: every intent (and whatever led to it) durable with one sync, then
            # the starts. A run refused or failing to start releases nothing the others took:
            # they were granted against the same counts a sequential pass would have used.
            if any(self._outlives_a_crash_here(s.job) for s in starts):
                self._finish_ends()
                self.store.sync()
            crash_point("dispatch.after_intent")
        soon = not self.dry_run and len(starts) >= _SOON_FROM
        with self._starting(failed) as under_way:
            for start in starts:
                submit_soon = self._submit_soon(start.job) if soon else None
                if submit_soon is not None:
                    self._start_soon(start, submit_soon, under_way, failed)
                    continue
                self._settle(under_way, failed, 0)  # in order: one run's end decides others'
                if not self._submit(start) and self._failed(start.marked):
                    failed.add(start.job.name)

    @contextlib.contextmanager
    def _starting(self, failed: set[str]) -> Iterator[deque[tuple[Start, PendingSubmit]]]:
        """Starts handed over in the block, recorded at its end. If the block fails (or the
        recording does: a full disk), its starts are waited for, unrecorded, before the pass
        fails: none may begin after the pass is over (a `talon watch` goes on to its next
        pass, whose `adopt` must find them). Their intents are recorded; that pass adopts the
        runs."""
        under_way: deque[tuple[Start, PendingSubmit]] = deque()
        try:
            yield under_way
            self._settle(under_way, failed, 0)
        except BaseException:
            for _, pending in under_way:
                with contextlib.suppress(Exception):
                    pending.result()
            raise

    def _submit_soon(self, job: Job) -> Callable[[Submission], PendingSubmit] | None:
        """The executor's background start (local's spawner threads), if it has one."""
        found: Callable[[Submission], PendingSubmit] | None = getattr(
            self.executor(job.executor), "submit_soon", None
        )
        return found

    def _start_soon(
        self,
        start: Start,
        submit_soon: Callable[[Submission], PendingSubmit],
        under_way: deque[tuple[Start, PendingSubmit]],
        failed: set[str],
    ) -> None:
        """Hand `start` over to `submit_soon`, and record the starts that are over meanwhile."""
        self._prepare(start)
        under_way.append((start, submit_soon(start.sub)))
        self._settle(under_way, failed, _UNDER_WAY)

    def _settle(
        self, under_way: deque[tuple[Start, PendingSubmit]], failed: set[str], keep: int
    ) -> None:
        """Record the starts that are over, oldest first; wait for the oldest while more than
        `keep` are under way (each holds its log file open)."""
        while under_way and (len(under_way) > keep or under_way[0][1].ready()):
            start, pending = under_way.popleft()
            if not self._submitted(start, pending.result) and self._failed(start.marked):
                failed.add(start.job.name)

    def _failed(self, run: Run) -> bool:
        """Whether `run` failed in this pass, as the view has it now (not sent back to wait)."""
        assert self.view is not None
        return self.view.overlay.get(run.relpath, run).state is State.FAILED

    def _wait(self, run: Run, reason: str) -> None:
        def change(current: Run) -> Run | None:
            if current.state is not State.READY or current.reason == reason:
                return None
            return current.but(reason=reason)

        new = self.write(run, change)
        if new.reason != run.reason:
            self.decide("wait", new, reason)

    def _mark(self, run: Run, job: Job, grants: Sequence[Grant]) -> Start | None:
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
        if len(SUBMISSIONS) > 10_000:
            SUBMISSIONS.clear()  # runs settled by other processes never take theirs out
        SUBMISSIONS[(self._abs_state, run.id)] = (job, sub)
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
        return Start(marked, job, grants, sub, intent, unwritten)

    def _submit(self, start: Start) -> bool:
        """Start a marked run (its intent already durable) and record its handle."""
        if self.dry_run:
            self.write(start.marked, with_handle({"plan": True}))
            self.decide("dispatch", start.marked, _dispatch_detail(start.job, start.grants))
            return True
        self._prepare(start)
        return self._submitted(start, lambda: self.executor(start.job.executor).submit(start.sub))

    def _prepare(self, start: Start) -> None:
        self.store.makedirs(start.sub.log_path.parent)
        self.store.makedirs(start.sub.status_dir)

    def _submitted(self, start: Start, submit: Callable[[], Handle]) -> bool:
        """Record how the start `submit` makes (or waits for) went: the handle, or why not."""
        marked, job = start.marked, start.job
        try:
            handle = submit()
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
            recorded = with_handle(handle)(marked) or marked
            # Not made durable at once: the journal holds the intent until the pass's last sync.
            if self.store.create(recorded):
                assert self.view is not None
                self.view.note(recorded)
            else:
                recorded = marked.but(dispatch=None)  # someone else's run: not ours to own
        else:
            # Not made durable: if a power cut rolls it back, the next pass adopts the run.
            recorded = self.write(marked, with_handle(handle), durable=False)
        if recorded.state is not State.RUNNING or recorded.dispatch != start.intent:
            # Cancelled between our intent and the start: stop what we just started.
            self._stop(with_handle(handle)(marked) or marked, "cancelled while starting")
            return False
        self.decide("dispatch", marked, _dispatch_detail(job, start.grants))
        return True

    def _defer(self, start: Start, handle: Handle) -> bool:
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
        recorded = with_handle(handle)(start.marked) or start.marked
        text = json.dumps(recorded.to_json())
        bookkeeping.journal_fired(self.store, rel, text, held=True)
        self.deferred[rel] = Deferred(recorded, time.monotonic(), on_disk, text)
        self.view.note(recorded)
        return True

    @staticmethod
    def _if_ours(start: Start, change: Callable[[Run], Run | None]) -> Callable[[Run], Run | None]:
        """`change`, applied only while the file still holds this pass's intent: a `talon
        cancel` that landed after the intent was written wins."""

        def guarded(current: Run) -> Run | None:
            if current.state is not State.RUNNING or current.dispatch != start.intent:
                return None
            return change(current)

        return guarded

    def _written(self, start: Start) -> bool:
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


def _one_at_a_time(job: Job) -> bool:
    """Whether a run of `job` holds the younger ones back (max_running, once_per_period): they
    are started after the whole batch is marked, so that an older run whose start is refused
    (and goes back to ready) is not overtaken by a younger one checked after it."""
    return job.constraints.max_running is not None or job.constraints.once_per_period


# Rounds of dispatch in one pass after runs failed to start (each can free others).
_ROUNDS = 3
# From this many starts in one go, executors that can start runs in the background do (see
# talon.executors.spawning), at most _UNDER_WAY at a time.
_SOON_FROM = 4
_UNDER_WAY = 32


@dataclass
class Start:
    """A run marked running (its intent recorded) and about to be submitted."""

    marked: Run
    job: Job
    grants: Sequence[Grant]
    sub: Submission
    intent: Mapping[str, Any]
    unwritten: bool  # its intent is in the journal only; the file comes with the handle


def _dispatch_detail(job: Job, grants: Sequence[Grant]) -> str:
    held = ", ".join(g.path for g in grants)
    return f"on {job.executor}" + (f" holding {held}" if held else "")
