"""Step 3 of a pass: check the constraints of the runs that wait."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from talon.constraints import Check, Verdict, combine, evaluate, start_by_deadline
from talon.jobindex import unblocked_by, unblockers
from talon.model import Job
from talon.pass_recording import Recording
from talon.runs import Run, State, iso


class Checking(Recording):
    """Checking waiting runs."""

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
            wanted.update(n for c in changed for n in unblocked_by(self.spec).get(c, ()))
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
            if job is None:
                always, quiet, poll = True, False, 0.0
            else:
                always, quiet, poll = False, changed.isdisjoint(unblockers(job)), job.poll_s
            for run in runs:
                if run.state is State.BLOCKED:
                    last = checked.get(run.id)
                    deadline = _deadline(run, job)
                    if now_ts > deadline or not (
                        quiet and last is not None and now_ts - last < poll
                    ):
                        self.check_one(run)
                        last = checked.get(run.id)
                    # Next due at its poll, or at its start_by deadline if that comes first.
                    due = -math.inf if always or last is None else last + poll
                    calm = min(calm, due, deadline)
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
        if run.state is State.BLOCKED:
            last = self.book.checked.get(run.id)
            now_ts = self.now.timestamp()
            if (
                last is not None
                and now_ts - last < job.poll_s
                and self.changed_jobs.isdisjoint(unblockers(job))
                and now_ts <= _deadline(run, job)
            ):
                return run  # checked lately, nothing it waits for changed, not yet too late
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
            self._decide_state(new)
        return new


def _deadline(run: Run, job: Job | None) -> float:
    """The run's start_by deadline as a timestamp (inf: none): past it, it is checked (and
    fails) whatever its poll interval says."""
    if job is None or job.constraints.start_by is None:
        return math.inf
    deadline = start_by_deadline(run, job)
    return deadline.timestamp() if deadline is not None else math.inf


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
