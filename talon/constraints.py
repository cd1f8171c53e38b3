"""Constraints: pure checks of one run against the configuration and a read-only state view.

Each check returns a verdict — pass, block, fail (can never be met), cancel (skip the run) —
and a sentence a person understands. `combine` applies the SPEC's rule: any fail → failed,
else any cancel → skipped, else any block → blocked (with every reason), else ready.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from talon.model import AfterDep, Job, Spec
from talon.periods import Period, period_containing
from talon.runs import Run, State, iso


class Verdict(StrEnum):
    PASS = "pass"
    BLOCK = "block"
    FAIL = "fail"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Check:
    constraint: str
    verdict: Verdict
    reason: str

    def as_json(self, at: datetime) -> dict[str, Any]:
        return {
            "constraint": self.constraint,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "at": iso(at),
        }


class StateView(Protocol):
    """What constraints may read: runs by (period, job), and the open runs."""

    def runs_in(self, period_key: str, job: str) -> Sequence[Run]: ...

    def open_runs(self, job: str) -> Sequence[Run]: ...


# A plugin constraint: called with the run, its job's option value, the view and now.
PluginFn = Callable[[Run, Any, StateView, datetime], tuple[str, str]]


def matching_period(run: Run, dep: AfterDep, upstream: Job, tz: ZoneInfo) -> Period:
    """The upstream period containing this run's period start (or the one before it)."""
    start = datetime.fromisoformat(run.period["start"])
    up = period_containing(upstream.period_type, start, ZoneInfo(upstream.timezone))
    return up.previous() if dep.period == "previous" else up


def start_by_deadline(run: Run, job: Job) -> datetime | None:
    """When `run` must have started by, under its job's start_by; None when none applies."""
    sb = job.constraints.start_by
    if sb is None or run.trigger.get("type") == "backfill":
        return None  # (a backfill is made for a past period on purpose, late by design)
    trig_at = datetime.fromisoformat(run.trigger["at"]).astimezone(ZoneInfo(job.timezone))
    if sb.clock is not None:
        # The clock time on the trigger's day (SPEC), even when that is before the trigger: a
        # run triggered at 10:00 with start_by 09:00 is late already. A time the day skips
        # (spring forward) is the first instant after the gap, as for triggers; a repeated
        # one is its first occurrence.
        return _on_day(trig_at, sb.clock.hour, sb.clock.minute, ZoneInfo(job.timezone))
    # Elapsed time, not wall time: across a DST change "3h" is three real hours.
    from datetime import UTC

    return trig_at.astimezone(UTC) + timedelta(seconds=sb.after_s or 0)


def check_start_by(run: Run, job: Job, now: datetime) -> Check | None:
    sb = job.constraints.start_by
    if sb is None:
        return None
    deadline = start_by_deadline(run, job)
    if deadline is None:
        return Check("start_by", Verdict.PASS, "start_by does not apply to a backfill")
    if now > deadline:
        local_now = now.astimezone(ZoneInfo(job.timezone)).strftime("%H:%M:%S")
        return Check("start_by", Verdict.FAIL, f"start_by {sb.describe()} passed at {local_now}")
    return Check("start_by", Verdict.PASS, f"start_by {sb.describe()} not yet reached")


def _on_day(day: datetime, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    """`hour:minute` on the local day of `day`, as an aware instant in `tz`: the first
    valid instant after the gap for a wall time that does not exist, the first occurrence
    of one that happens twice."""
    from datetime import UTC

    from talon.periods import gap_end, wall_exists

    wall = day.replace(hour=hour, minute=minute, second=0, microsecond=0, tzinfo=None)
    if not wall_exists(wall, tz):
        return gap_end(wall, tz)
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC).astimezone(tz)


def check_after(run: Run, job: Job, spec: Spec, view: StateView) -> list[Check]:
    out = []
    for dep in job.constraints.after:
        upstream = spec.jobs.get(dep.job)
        if upstream is None:
            out.append(Check("after", Verdict.FAIL, f"upstream {dep.job} is not in the schedule"))
            continue
        period = matching_period(run, dep, upstream, ZoneInfo(job.timezone))
        runs = view.runs_in(period.key, dep.job)
        name = f"after {dep.job}"
        if not runs:
            out.append(
                Check(name, Verdict.BLOCK, f"waiting for {dep.job} to succeed in {period.key}")
            )
            continue
        latest = runs[-1]
        if upstream.constraints.once_per_period:
            # Its period's success is final: a later run of it is skipped for that success,
            # and is no reason to wait, or to be cancelled.
            latest = next((r for r in reversed(runs) if r.state is State.SUCCEEDED), latest)
        if latest.state is State.SUCCEEDED:
            out.append(Check(name, Verdict.PASS, f"{dep.job} succeeded in {period.key}"))
        elif latest.state is State.FAILED:
            # A retry is created before its failed attempt is recorded, so a failed latest run
            # has no retry coming: the upstream failed for good in this period.
            out.append(
                Check(
                    name,
                    Verdict.FAIL,
                    f"upstream {dep.job} failed in {period.key} ({latest.id})",
                )
            )
        elif latest.state is State.SKIPPED:
            out.append(
                Check(
                    name,
                    Verdict.CANCEL,
                    f"upstream {dep.job} was skipped in {period.key} ({latest.id})",
                )
            )
        else:
            # Named by its run, not its state: the upstream going from ready to running is
            # not a change of this run's reason, so it is not rewritten (nor its history).
            out.append(
                Check(
                    name,
                    Verdict.BLOCK,
                    f"waiting for {dep.job} to succeed in {period.key} ({latest.id})",
                )
            )
    return out


def check_once_per_period(run: Run, job: Job, view: StateView) -> Check | None:
    if not job.constraints.once_per_period:
        return None
    others = [r for r in view.runs_in(run.period_key, job.name) if r.id != run.id]
    for other in others:
        if other.state is State.SUCCEEDED:
            return Check(
                "once_per_period",
                Verdict.CANCEL,
                f"already succeeded in {run.period_key} ({other.id})",
            )
    # One at a time: a run started while another runs could be the period's second success.
    # The older of two ready ones goes first; the younger waits for its outcome.
    for other in others:
        if other.state is State.RUNNING or (
            other.state is State.READY and (other.created, other.id) < (run.created, run.id)
        ):
            return Check(
                "once_per_period",
                Verdict.BLOCK,
                f"waiting for {other.id} to finish: once per period",
            )
    return Check("once_per_period", Verdict.PASS, f"no success yet in {run.period_key}")


def check_max_running(run: Run, job: Job, view: StateView, dispatched: int = 0) -> Check | None:
    limit = job.constraints.max_running
    if limit is None:
        return None
    running = (
        sum(1 for r in view.open_runs(job.name) if r.state is State.RUNNING and r.id != run.id)
        + dispatched
    )
    if running >= limit:
        return Check(
            "max_running",
            Verdict.BLOCK,
            f"{running} run(s) of {job.name} running, max_running is {limit}",
        )
    return Check("max_running", Verdict.PASS, f"{running} of {limit} allowed runs running")


def check_max_blocked(run: Run, job: Job, view: StateView) -> Check | None:
    limit = job.constraints.max_blocked
    if limit is None:
        return None
    older = [
        r
        for r in view.open_runs(job.name)
        if r.state is State.BLOCKED and r.id != run.id and (r.created, r.id) < (run.created, run.id)
    ]
    if len(older) >= limit:
        return Check(
            "max_blocked", Verdict.CANCEL, f"max_blocked {limit}: {older[0].id} is already blocked"
        )
    return Check(
        "max_blocked", Verdict.PASS, f"{len(older)} older run(s) blocked, max_blocked is {limit}"
    )


def evaluate(
    run: Run,
    job: Job,
    spec: Spec,
    view: StateView,
    now: datetime,
    plugins: Mapping[str, PluginFn] | None = None,
    dispatched: int = 0,
) -> list[Check]:
    """Every constraint's verdict for one run, in a stable order."""
    checks: list[Check] = []
    for one in (
        check_start_by(run, job, now),
        check_once_per_period(run, job, view),
        check_max_blocked(run, job, view),
        check_max_running(run, job, view, dispatched),
    ):
        if one is not None:
            checks.append(one)
    checks.extend(check_after(run, job, spec, view))
    for plugin in job.constraints.plugins:
        fn = (plugins or {}).get(plugin.name)
        if fn is None:
            checks.append(
                Check(plugin.name, Verdict.BLOCK, f"plugin {plugin.target} could not be loaded")
            )
            continue
        try:
            verdict, reason = fn(run, plugin.options, view, now)
            checks.append(Check(plugin.name, Verdict(verdict), str(reason)))
        except Exception as exc:
            checks.append(
                Check(
                    plugin.name,
                    Verdict.BLOCK,
                    f"plugin {plugin.target} raised {type(exc).__name__}: {exc}",
                )
            )
    return checks


def combine(checks: Sequence[Check]) -> tuple[State, str | None]:
    """The run's state and reason from its checks (SPEC: fail > cancel > block > ready)."""
    for verdict, state in ((Verdict.FAIL, State.FAILED), (Verdict.CANCEL, State.SKIPPED)):
        hits = [c.reason for c in checks if c.verdict is verdict]
        if hits:
            return state, "; ".join(hits)
    blocks = [c.reason for c in checks if c.verdict is Verdict.BLOCK]
    if blocks:
        return State.BLOCKED, "; ".join(blocks)
    return State.READY, None
