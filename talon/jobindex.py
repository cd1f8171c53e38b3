"""Indexes over the schedule a pass needs per job, built once per loaded spec."""

from __future__ import annotations

from talon.model import Job, Spec
from talon.runs import Run
from talon.triggers import AfterTrigger

_AFTER_INDEX: list[tuple[Spec, dict[str, list[Job]]]] = []


def after_index(spec: Spec) -> dict[str, list[Job]]:
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


_UNBLOCKERS: dict[tuple[str, str], frozenset[str]] = {}


def unblockers(job: Job) -> frozenset[str]:
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


def unblocked_by(spec: Spec) -> dict[str, frozenset[str]]:
    """For each job, the jobs whose blocked runs it can unblock (`unblockers` turned round),
    for the last spec seen."""
    if _UNBLOCKED_BY and _UNBLOCKED_BY[0][0] is spec:
        return _UNBLOCKED_BY[0][1]
    index: dict[str, set[str]] = {}
    for job in spec.jobs.values():
        for name in unblockers(job):
            index.setdefault(name, set()).add(job.name)
    found = {name: frozenset(names) for name, names in index.items()}
    _UNBLOCKED_BY[:] = [(spec, found)]
    return found


def placeholder_job(run: Run, executor: str) -> Job:
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
