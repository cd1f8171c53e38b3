"""Recording decisions: creating runs, and changing them under their job's lock (or in memory,
while their files wait or in a dry run)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from talon import bookkeeping
from talon.constraints import PluginFn, combine, evaluate
from talon.faults import crash_point
from talon.pass_deferral import Deferral, Deferred
from talon.runchanges import replay
from talon.runs import Run, State, iso
from talon.store import CorruptRun


class Recording(Deferral):
    """Creating and changing runs."""

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
        # (A ready run has no reason in its file; `plan` says why it moves all the same.)
        ready = "nothing holds it back" if run.state is State.READY else ""
        self.decide(action, run, run.reason or ready)

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
            bookkeeping.journal_fired(self.store, rel, text, held=True)
            crash_point("create.after_journal")
            deferred[rel] = Deferred(run, time.monotonic(), False, text)
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
        rel = self._rel(run)
        if self.deferred and rel in self.deferred:
            waiting = self._waiting(rel)
            if waiting is not None:
                # Its file does not exist yet, and none can appear while this pass holds the
                # pass lock (only passes and `talon cancel`, under it, write it from the log).
                old = waiting.run
                new = change(old) or old
                waiting.run = new
                if new.state.terminal:  # (skipped, failed before it started): no reason to wait
                    self._flush_deferred(only=rel)
                elif new.state is not State.RUNNING and (
                    new.state is not old.state or new.reason != old.reason
                ):
                    self.stale.add(rel)  # its line is written at the end of the pass
                if new.state is not run.state:
                    self.changed_jobs.add(run.job)
                self.view.note(new)
                return new
            self._flush_deferred(only=rel)
        held = self.held.pop(run.id, None)
        if run.id in self.pending:
            new = change(self.pending[run.id]) or self.pending[run.id]
            self.pending[run.id] = new
        elif self.dry_run:
            new = change(self.view.overlay.get(rel, run)) or run
        elif held is None and change(known := self.view.overlay.get(rel, run)) is None:
            # Nothing to change as far as this pass knows: skip the lock and the read. A file
            # changed behind our back is seen by the next pass.
            new = known
        else:
            changes = [*held[1], change] if held is not None else [change]
            if hold:
                base = held[0] if held is not None else self.view.overlay.get(rel, run)
                new = change(base) or base
                self.held[run.id] = (new, changes)
            else:
                try:
                    new = self.store.update(
                        self.store.path_of(run), replay(changes), durable=durable
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

    def _flush_pending(self) -> None:
        """Write the runs born ready that are still waiting (executor, resources)."""
        for run_id, run in list(self.pending.items()):
            del self.pending[run_id]
            if not self.create(run):
                assert self.view is not None
                self.view.drop(run)

    def plugins(self) -> dict[str, PluginFn]:
        if self._plugins is None:
            from talon.plugins import load_constraint_plugins

            self._plugins, errors = load_constraint_plugins(
                self.spec.config.plugins, self.spec.config.root
            )
            self.problems.extend(message for _, message in errors)
        return self._plugins

    def revision(self) -> dict[str, Any] | None:
        if not self._revision_read:
            self._revision_read = True
            from talon.revision import git_revision

            self._revision = git_revision(self.spec.config.root, self.spec)
        return self._revision
