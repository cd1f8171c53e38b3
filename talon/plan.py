"""The decisions of a pass, as pure functions of (configuration, state, now).

`reconcile`, `plan` and `explain` all reach their answers through these functions; only the
shell in `passes.py` and its steps (`pass_*.py`) turns them into files and processes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from talon.executors.base import Finished, Lost, Status
from talon.model import Catchup, Job
from talon.periods import Period, PeriodType, period_containing
from talon.runs import Run, State, iso
from talon.store import run_id_for
from talon.triggers import Fire, fires_between, is_timed, next_fire

# A fire is "on time" (not missed) when the pass sees it within this long: a reconcile run
# from cron every minute, or a little late under load, must not lose it under catchup: none.
# After a longer gap between passes (Talon not running) only the newest fire can be on time.
ON_TIME_GRACE = timedelta(minutes=5)
_STAMP_LEN = len("20261127T063000Z")


@dataclass(frozen=True)
class Decision:
    """One thing a pass did or would do: printed by reconcile and plan, one line each."""

    action: str  # create, ready, block, skip, fail, dispatch, succeed, lost, retry, wait
    job: str
    run: str
    detail: str = ""

    def __str__(self) -> str:
        tail = f": {self.detail}" if self.detail else ""
        return f"{self.action:<8} {self.run}{tail}"

    def as_json(self) -> dict[str, str]:
        return {"action": self.action, "job": self.job, "run": self.run, "detail": self.detail}


@dataclass(frozen=True)
class Cursor:
    """How far a job's timed triggers have been processed, and when it is next due."""

    hash: str
    cursor: datetime
    next_due: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "cursor": iso(self.cursor),
            "at": self.cursor.timestamp(),
            "next_due": self.next_due.timestamp() if self.next_due else None,
        }


def first_cursor(job: Job, now: datetime) -> Cursor:
    """A job seen for the first time: its window starts now, or at its `start:`.

    The window includes its start (SPEC: it "starts then"), while a cursor's window is
    (cursor, now]: the cursor goes a second before the start, so that a trigger at exactly
    the start fires. Triggers fire on whole seconds at the finest (cron's seconds field), so
    that second holds no other fire; and a whole second survives the cursor's ISO text."""
    return refresh_cursor(job, _just_before(job.start if job.start is not None else now))


def _just_before(start: datetime) -> datetime:
    # In UTC: a second off a local time can land in a DST gap or a repeated hour.
    return start.astimezone(UTC) - timedelta(seconds=1)


def fires_from(job: Job, now: datetime) -> datetime:
    """Where to look for a job's next fire from (`talon next`, `explain`, a changed job's
    cursor): now, or, while its `start:` is still ahead, just before it, as a pass will."""
    if job.start is not None and _just_before(job.start) > now:
        return _just_before(job.start)
    return now


def refresh_cursor(job: Job, at: datetime) -> Cursor:
    tz = ZoneInfo(job.timezone)
    fire = next_fire(job.triggers, at, tz, job.dst) if is_timed(job.triggers) else None
    return Cursor(job.hash, at, fire.at if fire else None)


MISSED_COUNT_CAP = 10_000  # how far missed fires are counted one by one


def due_fires(
    job: Job, cursor: Cursor, now: datetime
) -> tuple[list[Fire], list[Fire], Cursor, int]:
    """(fires to create runs for, fires dropped by the catchup policy, the advanced cursor,
    how many older fires were missed and not even looked at: up to MISSED_COUNT_CAP + 1)."""
    if cursor.next_due is None or cursor.next_due > now:
        return [], [], cursor, 0
    fires, complete = _recent_fires(job, cursor.cursor, now, max(job.max_catchup, 1))
    advanced = refresh_cursor(job, now)
    if not fires:
        return [], [], advanced, 0
    # Only the newest fires may have been fetched (a job down for a year must not enumerate
    # its minutes); the older ones are counted, to a cap, so that "missed" says how many.
    older = (
        []
        if complete
        else fires_between(
            job.triggers,
            cursor.cursor,
            fires[0].at - timedelta(microseconds=1),
            ZoneInfo(job.timezone),
            job.dst,
            limit=MISSED_COUNT_CAP + 1,
        )
    )
    newest = fires[-1]
    on_time = [f for f in fires if now - f.at <= ON_TIME_GRACE]
    if now - cursor.next_due > ON_TIME_GRACE:
        # Due for longer than the grace and not fired: no pass ran since (any would have
        # fired it), so Talon was not running, and what fell in that time was missed but for
        # the newest fire, which this pass is in time for. (A pass a little late, under load,
        # is in time for every fire since the one before it. The cursor itself says nothing
        # of the last pass: a job's moves only when it is due.)
        on_time = on_time[-1:]
    if job.catchup is Catchup.ALL:
        keep = fires[-job.max_catchup :] if job.max_catchup > 0 else []
    elif job.catchup is Catchup.LATEST:
        # Fires seen within the grace are on time, not missed: all of them run; of the
        # missed ones only the newest, when none is on time.
        keep = on_time or [newest]
    else:
        keep = on_time
    dropped = [f for f in fires if f not in keep]
    return keep, dropped, advanced, len(older)


def _recent_fires(job: Job, since: datetime, now: datetime, want: int) -> tuple[list[Fire], bool]:
    """The newest fires in (since, now], at least `want` of them when there are that many,
    and whether they are all of them.

    Looks back a day, a month, a year, then all the way: a job down for years must not
    enumerate every minute it missed to find the newest one.
    """
    tz = ZoneInfo(job.timezone)
    for span in (timedelta(days=1), timedelta(days=32), timedelta(days=367), None):
        start = since if span is None or now - span <= since else now - span
        fires = fires_between(job.triggers, start, now, tz, job.dst)
        if len(fires) >= want or start == since:
            # The on-time ones and the newest missed one are all a policy but `all` may
            # keep; a few more tell how many were missed.
            kept = fires[-want:] if job.catchup is Catchup.ALL else fires[-max(want, 10) :]
            return kept, start == since and len(kept) == len(fires)
    return [], True


def period_for(job: Job, instant: datetime) -> Period:
    return _period_at(job.period_type, job.timezone, job.period_offset, instant)


@functools.lru_cache(maxsize=4096)
def _period_at(ptype: PeriodType, timezone: str, offset: int, instant: datetime) -> Period:
    """(Remembered: jobs due together mostly share their period, 9 us to work out each time.
    Equal instants in other zones compare equal, and give the same period in `timezone`.)"""
    return period_containing(ptype, instant, ZoneInfo(timezone), offset)


def period_json(p: Period) -> dict[str, str]:
    return {
        "type": p.type.value,
        "key": p.key,
        "start": iso(p.start) or "",
        "end": iso(p.end) or "",
    }


def new_run(
    job: Job,
    *,
    run_id: str,
    period: Period,
    trigger: Mapping[str, Any],
    now: datetime,
    attempt: int = 1,
    params: Mapping[str, Any] | None = None,
    revision: Mapping[str, Any] | None = None,
) -> Run:
    """A run as created: blocked until its first constraint check (done in the same pass)."""
    run = Run(
        id=run_id,
        job=job.name,
        state=State.BLOCKED,
        period=period_json(period),
        trigger=dict(trigger),
        created=iso(now) or "",
        attempt=attempt,
        params={**job.params, **(params or {})},
        revision=revision,
        job_hash=job.hash,
    )
    return run.transition(State.BLOCKED, now, "created, constraints not yet checked")


def run_for_fire(
    job: Job, fire: Fire, now: datetime, kind: str, revision: Mapping[str, Any] | None
) -> Run:
    trigger: dict[str, Any] = {"type": kind, "at": iso(fire.at)}
    if fire.note:
        trigger["note"] = fire.note
    return new_run(
        job,
        run_id=run_id_for(job.name, fire.at),
        period=period_for(job, fire.at),
        trigger=trigger,
        now=now,
        revision=revision,
    )


def run_after_upstream(
    job: Job, upstream: Run, now: datetime, revision: Mapping[str, Any] | None
) -> Run:
    """The run an `{after: X}` trigger creates when a run of X succeeds.

    Its id names the upstream run (`b@<stamp of a's run>.after.a`), so each upstream run
    triggers exactly one dependant, however many run in the same second. An upstream id with
    more than a stamp (a retry, another dependant) is shortened to a digest, so ids do not grow
    along a chain.
    """
    up_start = datetime.fromisoformat(upstream.period["start"])
    stamp = upstream.id.split("@", 1)[-1]
    if len(stamp) != _STAMP_LEN or "@" not in upstream.id:
        import hashlib

        digest = hashlib.sha256(upstream.id.encode()).hexdigest()[:8]
        stamp = f"{stamp[:_STAMP_LEN]}.{digest}"
    return new_run(
        job,
        run_id=f"{job.name}@{stamp}.after.{upstream.job}",
        # The dependant's period containing the upstream's: the upstream's own offset is
        # already in that start, so the dependant's is not applied again.
        period=period_containing(job.period_type, up_start, ZoneInfo(job.timezone)),
        trigger={"type": "after", "at": upstream.finished or iso(now), "upstream": upstream.id},
        now=now,
        revision=revision,
    )


def next_attempt(job: Job, failed: Run, now: datetime, existing: Sequence[Run], kind: str) -> Run:
    """A new attempt in the same period.

    An automatic retry is attempt N+1 of the failed run, so a pass that dies after creating it
    and runs again creates the same id, not another attempt. `talon retry` takes the next
    attempt number free in the period.
    """
    if kind == "retry-auto":
        attempt = failed.attempt + 1
    else:
        attempt = max([r.attempt for r in existing] + [failed.attempt]) + 1
    import re

    base = re.sub(r"\.r\d+$", "", failed.id)  # only the attempt suffix, never the job's name
    return new_run(
        job,
        run_id=f"{base}.r{attempt}",
        period=_period_from_json(failed, job),
        trigger={"type": "retry", "at": iso(now), "previous": failed.id},
        now=now,
        attempt=attempt,
        params=failed.params,
        revision=failed.revision,
    )


def _period_from_json(run: Run, job: Job) -> Period:
    from talon.periods import parse_period_key

    return parse_period_key(run.period["key"], ZoneInfo(job.timezone))


LOST = "lost"  # the reason of a run whose executor can no longer account for it


def _ended(run: Run, status: Finished, now: datetime) -> datetime:
    """When the run ended: as its executor says, when that lies between its start and now
    (a pass from cron collects a run up to a minute late; its duration is the run's, not the
    pass's). Otherwise, as under a `--now` of another day, when this pass learned it."""
    if status.ended is None or run.started is None:
        return now
    ended = datetime.fromtimestamp(status.ended, UTC)
    if datetime.fromisoformat(run.started) <= ended <= now:
        return ended.astimezone(now.tzinfo)
    return now


def settle(run: Run, status: Status, now: datetime, timeout_s: float | None) -> Run | None:
    """The running run after its executor's answer; None when nothing changes."""
    if isinstance(status, Finished):
        ok = status.exit_code == 0
        reason = None if ok else (status.detail or f"exited with status {status.exit_code}")
        return run.transition(
            State.SUCCEEDED if ok else State.FAILED,
            now,
            reason,
            exit_code=status.exit_code,
            finished=iso(_ended(run, status, now)),
        )
    if isinstance(status, Lost):
        # The reason is the SPEC's `lost`, for scripts and greps; how the executor lost the
        # run goes in the history entry.
        return run.transition(
            State.FAILED, now, LOST, why=f"{LOST}: {status.reason}", finished=iso(now)
        )
    if timeout_s is not None and run.started is not None:
        started = datetime.fromisoformat(run.started)
        if now - started > timedelta(seconds=timeout_s):
            from talon.durations import format_duration

            return run.transition(
                State.FAILED,
                now,
                f"timed out after {format_duration(timeout_s)}",
                finished=iso(now),
            )
    return None
