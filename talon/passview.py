"""The view a pass has of the runs: the open ones by state, and the runs of a job and period
as the store and the pass's own changes give them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from talon.model import Spec
from talon.runs import OPEN_STATES, Run, State
from talon.store import FileStore


@dataclass
class PassView:
    """The constraint view over the store, with this pass's own changes folded in.

    Besides the open runs by job, it keeps those ready and running, and the jobs with a
    blocked run noted since `check` last looked: the passes of a `reconcile --wait` reuse one
    view, and a long chain would otherwise cost a walk over every open run at each pass."""

    store: FileStore
    overlay: dict[str, Run] = field(default_factory=dict)  # relpath -> run (dry-run and cache)
    _listing: dict[tuple[str, str], list[Run]] = field(default_factory=dict)
    _noted: dict[tuple[str, str], dict[str, Run]] = field(default_factory=dict)
    open_by_job: dict[str, dict[str, Run]] = field(default_factory=dict)
    ready: dict[str, Run] = field(default_factory=dict)  # run id -> run
    running: dict[str, Run] = field(default_factory=dict)
    open_paths: dict[str, str] = field(default_factory=dict)  # run id -> its relpath, if open
    touched: set[str] = field(default_factory=set)  # jobs with a blocked run noted since
    # (spec, timestamp): until then, with that spec, no blocked run is due a check that `check`
    # does not find through `touched`, the ready runs or the jobs that changed (see check).
    calm: tuple[Spec, float] | None = None
    problems: list[str] = field(default_factory=list)

    def runs_in(self, period_key: str, job: str) -> Sequence[Run]:
        key = (period_key, job)
        if key not in self._listing:
            self._listing[key] = list(
                self.store.runs_in(
                    period_key, job, on_corrupt=lambda e: self.problems.append(str(e))
                )
            )
        runs = {r.id: r for r in self._listing[key]}
        runs.update(self._noted.get(key, {}))
        return sorted(runs.values(), key=lambda r: (r.created, r.attempt, r.id))

    def open_runs(self, job: str) -> Sequence[Run]:
        return list(self.open_by_job.get(job, {}).values())

    def open(self) -> Iterator[Run]:
        for by_job in self.open_by_job.values():
            yield from by_job.values()

    def note(self, run: Run) -> None:
        rel = run.relpath
        self.overlay[rel] = run
        self._noted.setdefault((run.period_key, run.job), {})[run.id] = run
        by_job = self.open_by_job.setdefault(run.job, {})
        self.ready.pop(run.id, None)
        self.running.pop(run.id, None)
        state = run.state
        if state in OPEN_STATES:
            by_job[run.id] = run
            self.open_paths[run.id] = rel
            if state is State.READY:
                self.ready[run.id] = run
            elif state is State.RUNNING:
                self.running[run.id] = run
            else:
                self.touched.add(run.job)
        else:
            by_job.pop(run.id, None)
            self.open_paths.pop(run.id, None)

    def drop(self, run: Run) -> None:
        """Forget an open run this pass noted but does not own after all (someone else's)."""
        self.open_by_job.get(run.job, {}).pop(run.id, None)
        self.open_paths.pop(run.id, None)
        self.ready.pop(run.id, None)
        self.running.pop(run.id, None)
