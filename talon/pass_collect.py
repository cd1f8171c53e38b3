"""Step 1 of a pass: collect the runs that ended, and what their ends set off (dependants,
retries); a run whose executor lost it becomes failed (`lost`)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from talon.executors.base import (
    Finished,
    Handle,
    Lost,
    Running,
    Status,
    Submission,
)
from talon.faults import crash_point
from talon.jobindex import after_index
from talon.markers import markers_in_file
from talon.model import Job
from talon.pass_submitting import ADOPT_RELIABLE, SUBMISSIONS, Submitting
from talon.plan import (
    next_attempt,
    run_after_upstream,
    settle,
)
from talon.runchanges import handle_of, replay, with_handle
from talon.runs import Run, State, iso
from talon.store import CorruptRun

UNSTARTED_GRACE_S = 5.0
DEFAULT_LEASE_S = 3600.0


class Collecting(Submitting):
    """Collecting ends."""

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
                run = self.write(run, with_handle(adopted))  # noqa: PLW2901 - adopted replaces stale
                handle = adopted
                self.decide(
                    "adopt", run, f"found the job submitted by an interrupted pass: {handle}"
                )
            if not self.dry_run:
                status = ex.poll(handle, sub)
            elif not handle.get("plan") and hasattr(ex, "look"):
                # A real run, in a plan: what its executor can tell without acting on it. (The
                # others' polls write: an ssh log synced, a first-unseen time noted.)
                status = ex.look(handle)
            else:
                status = self._simulated(run, handle)
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
            self._decide_state(new)

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

        def change(current: Run) -> Run | None:
            if current.state is not State.RUNNING:
                return None  # someone (talon cancel) settled it meanwhile
            new = current.transition(
                settled.state,
                self.now,
                settled.reason,
                why=settled.history[-1].get("reason") if settled.history else None,
                exit_code=settled.exit_code,
                finished=settled.finished,
            )
            progress, artifacts = markers
            if progress is not None:
                new = new.but(progress=progress)
            if artifacts:
                new = new.but(artifacts=(*new.artifacts, *artifacts))
            return new

        # The view has the end before what follows from it is made: a dependant checked at
        # once sees its upstream succeeded (not "waiting for it to succeed"), a retry sees
        # the attempt before it ended. The file is written later (`ends`), under the lock
        # held since the re-read above.
        if self.dry_run:
            new = self.write(run, change)
        else:
            new = change(current) or current
            assert self.view is not None
            self.view.note(new)
        if settled.state is State.SUCCEEDED:
            self._trigger_dependants(settled)
            crash_point("collect.after_dependants")
        elif settled.state is State.FAILED and job is not None and settled.attempt <= job.retries:
            self._retry(job, settled)
        if not self.dry_run:
            self.ends.append((run, change))
            self.changed_jobs.add(run.job)
        if new.state is State.SUCCEEDED and new.started:
            end = datetime.fromisoformat(new.finished) if new.finished else self.now
            self.book.add_duration(
                run.job, (end - datetime.fromisoformat(new.started)).total_seconds()
            )
        action = {State.SUCCEEDED: "succeed", State.FAILED: "fail"}.get(new.state, new.state.value)
        why = new.history[-1].get("reason") if new.history else None
        if self.dry_run and new.state is State.SUCCEEDED:
            why = "assumed to succeed after its expected duration (plan)"
        self.decide(action, new, why or new.reason or "")

    def _markers(self, sub: Submission) -> tuple[Mapping[str, Any] | None, list[Mapping[str, Any]]]:
        """Progress and artifacts a job printed as marker lines (remote jobs report this way)."""
        from talon.report import valid_url

        progress: dict[str, Any] | None = None
        artifacts: list[Mapping[str, Any]] = []
        try:
            for kind, payload in markers_in_file(sub.log_path):
                if kind == "progress":
                    from talon.report import merge_progress

                    progress = merge_progress(progress, payload)
                elif valid_url(str(payload.get("url", ""))):  # (as `artifact add` asks)
                    url, name = payload.get("url"), payload.get("name")
                    artifacts.append({"url": url, "name": name, "at": iso(self.now)})
        except OSError:
            pass
        return progress, artifacts

    def _dependants(self, upstream: str) -> list[Job]:
        return after_index(self.spec).get(upstream, [])

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
            SUBMISSIONS.pop((self._abs_state, run.id), None)
            path = self.store.path_of(run)
            pending = self.deferred.pop(self._rel(run), None) if self.deferred else None
            try:
                if pending is None:
                    new = self.store.update(path, change)
                elif pending.on_disk:
                    new = self.store.update(path, replay([handle_of(pending.run), change]))
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


def _prune_status(run: Run) -> None:
    """A settled local run's status files are scratch under state/.talon/proc: the run file now
    holds the outcome, so they go (see talon.executors.local.prune_status)."""
    if (run.executor or {}).get("type") == "local":
        from talon.executors.local import prune_status

        prune_status((run.executor or {}).get("handle") or {})
