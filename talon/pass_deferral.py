"""What a `reconcile --wait` keeps back: the files of runs it started (until they end, or
DEFER_S) and of runs it created waiting (until they start or end, or WAITING_S). See
docs/concurrency.md."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from talon.pass_state import PassState
from talon.runchanges import handle_of
from talon.runs import Run, State
from talon.store import CorruptRun

# `reconcile --wait`: how long the file of a run this process started may wait (see _defer):
# short, as the job itself may be waiting for it (`talon progress` from its first moment).
DEFER_S = 0.1
# `reconcile --wait`: how long the file of a run it created blocked, or ready and not started,
# may wait (see create). Nobody but people look for those (with ls, grep; `talon status`,
# `show` and `explain` find them in the index log meanwhile), and a chain that moves faster
# writes each of its runs once.
WAITING_S = 1.0


@dataclass
class Deferred:
    """A run this process started, or created to wait, and has not written since (see
    Pass._defer and Pass.create)."""

    run: Run  # running with its handle; or blocked or ready, never started (no file yet)
    since: float  # time.monotonic() at the start or the creation
    on_disk: bool  # its file exists, with the intent and no handle; else no file yet
    text: str  # the run as its last line in the index log holds it

    @property
    def waiting(self) -> bool:
        """Created by this process and not started: changes stay in memory until it starts
        (its intent goes to the log then) or its file is written."""
        return not self.on_disk and self.run.state is not State.RUNNING


class Deferral(PassState):
    """Keeping run files back, and writing them when their time is up."""

    def _may_wait_unwritten(self, run: Run) -> bool:
        """Whether a new run's file may wait (`reconcile --wait`): a run created blocked, or
        ready and not started, is kept in memory with its line in the index log, and its
        file written when it starts or ends, when WAITING_S has passed, or when nothing is
        left ready or running. In a chain each run is then written once, not created
        blocked, rewritten with its intent and rewritten again at its end. Not on shared
        storage (lockfile mode), where other hosts read the files and not this host's log."""
        return run.state in (State.BLOCKED, State.READY) and self.store.lock_mode == "flock"

    def _waiting(self, rel: str) -> Deferred | None:
        d = self.deferred.get(rel) if self.deferred else None
        return d if d is not None and d.waiting else None

    def _untouched(self, rel: str, d: Deferred) -> bool:
        """Whether the file of a deferred run is as this process left it (none, or its own)."""
        path = self.store.path_at(rel)
        return self.store.unchanged(path) if d.on_disk else not os.path.exists(path)

    def _settle_deferred(self, rel: str, d: Deferred) -> Run | None:
        """The file of a deferred run changed behind this process (a progress report, a pass
        restoring it from the log, a cancel): the file rules from now on. While it still
        holds this process's start, it gets the handle if it lacks it. None: unreadable."""
        assert self.deferred is not None
        del self.deferred[rel]
        path = self.store.path_at(rel)
        try:
            with self.store.locked(d.run.job):
                return self.store.update(path, handle_of(d.run), durable=False)
        except (FileNotFoundError, CorruptRun):
            return None

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
        if only is not None:
            d = self.deferred.get(only)
            if d is not None:
                self._write_deferred(only, d)
            return
        now = time.monotonic()
        for rel, d in list(self.deferred.items()):
            if not everything:
                wait = DEFER_S if d.run.state is State.RUNNING else WAITING_S
                if now - d.since < wait or d.since >= self._began:
                    continue  # (a run started by this pass is polled by the next one first)
            self._write_deferred(rel, d)

    def _write_deferred(self, rel: str, d: Deferred) -> None:
        assert self.deferred is not None
        del self.deferred[rel]
        try:
            if d.on_disk:
                self.store.update(self.store.path_at(rel), handle_of(d.run), durable=False)
            else:
                self.store.create(d.run)  # False: restored from its log line meanwhile
        except (FileNotFoundError, CorruptRun) as exc:
            self.problems.append(f"{rel}: {exc}")
