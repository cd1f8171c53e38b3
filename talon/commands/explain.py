"""`talon explain JOB|RUN`: why a run is where it is; when a job next fires."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from talon import bookkeeping
from talon.bookkeeping import find_run
from talon.cli import EXIT_OK, UsageError, parse_now
from talon.cron import CronTrigger
from talon.model import Job
from talon.output import emit_json
from talon.repo import Repo, open_repo
from talon.runs import Run, State
from talon.store import StoreError
from talon.triggers import AfterTrigger, ExternalTrigger, Fire, Trigger, is_timed, next_fire


def explain_run(repo: Repo, run: Run, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {
        "run": run.id,
        "job": run.job,
        "period": run.period_key,
        "state": run.state.value,
    }
    out["reason"] = run.reason
    last = run.history[-1].get("reason") if run.history else None
    # A fuller account of the last transition than the reason (a lost run: how it was lost).
    out["detail"] = last if last and last != run.reason else None
    out["checks"] = [dict(c) for c in run.checks]
    job = repo.spec.jobs.get(run.job)
    if job is None:
        out["now"] = f"job {run.job} is no longer in the schedule"
    elif run.state in (State.BLOCKED, State.READY):
        from talon.constraints import combine, evaluate
        from talon.passes import Pass

        p = Pass(repo.spec, repo.store, now, dry_run=True)
        p.load()
        assert p.view is not None

        checks = evaluate(
            run, job, repo.spec, p.view, now, p.plugins() if job.constraints.plugins else {}
        )
        state, reason = combine(checks)
        out["now"] = {
            "state": state.value,
            "reason": reason,
            "checks": [c.as_json(now) for c in checks],
        }
    return out


def explain_job(repo: Repo, name: str, now: datetime) -> dict[str, Any]:
    from talon.plan import fires_from, period_for

    job = repo.job(name)
    period = period_for(job, now)
    runs = list(repo.store.runs_in(period.key, name))
    known = {r.id for r in runs}
    # Those whose file a `reconcile --wait` keeps back are in the index log.
    runs += [
        r
        for r in bookkeeping.logged_runs(repo.store, f"{period.key}/{name}/").values()
        if r.id not in known
    ]
    runs.sort(key=lambda r: (r.created, r.attempt, r.id))
    # A trigger due and not fired yet comes next; else the first after now.
    fire = due = _due(repo, job, now)
    if fire is None and is_timed(job.triggers):
        fire = next_fire(job.triggers, fires_from(job, now), ZoneInfo(job.timezone), job.dst)
    return {
        "job": name,
        "defined_at": str(job.source),
        "period": period.key,
        "runs": [{"run": r.id, "state": r.state.value, "reason": r.reason} for r in runs],
        "next_trigger": fire.at.isoformat() if fire else None,
        "next_trigger_note": fire.note if fire else None,
        "next_trigger_due": due is not None,
        "triggers": [_describe(t) for t in job.triggers],
    }


def _due(repo: Repo, job: Job, now: datetime) -> Fire | None:
    """A trigger already due that no pass has fired yet (and that catchup keeps): the next
    pass creates its run, so it is what comes next, not the one after now."""
    from talon.plan import due_fires

    cursor = bookkeeping.load(repo.store).cursor(job.name)
    if cursor is None or cursor.hash != job.hash:
        return None
    keep, _, _, _ = due_fires(job, cursor, now)
    return keep[0] if keep else None


def _describe(trigger: Trigger) -> str:
    """A trigger as the schedule says it (`external`, `after: x`, the cron expression), not
    the name of the class that holds it."""
    if isinstance(trigger, ExternalTrigger):
        return "external"
    if isinstance(trigger, AfterTrigger):
        return f"after: {trigger.job}"
    if isinstance(trigger, CronTrigger):
        return f"cron: {trigger.expr}"
    from talon.durations import format_duration
    from talon.phrase import DAY_NAMES

    spans = ", ".join(
        f"every {format_duration(w.every_s)} from {w.start:%H:%M} to {w.end:%H:%M}"
        for w in trigger.windows
    )
    days = ""
    if trigger.days is not None:
        days = " on " + ",".join(DAY_NAMES[d - 1] for d in sorted(trigger.days))
    return f"window: {spans}{days}"


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    repo = open_repo(args.directory, environ, readonly=True, partial=True)
    now = parse_now(args.now)
    if "@" in args.target or args.target.endswith(".json"):
        try:
            result = explain_run(repo, find_run(repo.store, args.target)[1], now)
        except StoreError as exc:
            raise UsageError(str(exc)) from None
    else:
        result = explain_job(repo, args.target, now)
    if args.json:
        emit_json(result)
        return EXIT_OK
    if "run" in result:
        print(f"{result['run']} ({result['job']}, {result['period']}) is {result['state']}")
        if result["reason"]:
            print(f"  because: {result['reason']}")
        if result.get("detail"):
            print(f"  detail: {result['detail']}")
        for c in result["checks"]:
            print(f"  {c['constraint']}: {c['verdict']} — {c['reason']} (since {c['at']})")
        live = result.get("now")
        if isinstance(live, dict) and (live["state"], live["reason"]) != (
            result["state"],
            result["reason"],
        ):
            print(
                f"  checked now: would be {live['state']}"
                + (f": {live['reason']}" if live["reason"] else "")
            )
        elif isinstance(live, str):
            print(f"  {live}")
    else:
        print(f"{result['job']} (defined at {result['defined_at']}), period {result['period']}")
        if not result["runs"]:
            print("  no runs in this period yet")
        for r in result["runs"]:
            print(f"  {r['run']}: {r['state']}" + (f" — {r['reason']}" if r["reason"] else ""))
        if result["next_trigger"]:
            notes = [str(result["next_trigger_note"])] if result["next_trigger_note"] else []
            if result["next_trigger_due"]:
                notes.append("due: the next pass creates its run")
            note = f" ({'; '.join(notes)})" if notes else ""
            print(f"  next trigger: {result['next_trigger']}{note}")
        else:
            print(f"  no timed trigger ({', '.join(result['triggers']) or 'none'})")
    return EXIT_OK
