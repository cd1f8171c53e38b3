"""The executors of a pass, and what a run is submitted to them as."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from talon.executors.base import (
    Executor,
    Submission,
)
from talon.jobindex import placeholder_job
from talon.model import Job
from talon.pass_recording import Recording
from talon.placeholders import PlaceholderError, substitute, substitute_shell, values_for
from talon.runs import Run

# Executors whose `adopt` finds every run they started (by process table, job name): for these a
# run they cannot find was never started. SSH cannot tell (the host may be unreachable).
ADOPT_RELIABLE = frozenset({"local", "inprocess", "sge", "slurm"})
# (state directory, run id) -> (job, submission) for the runs this process dispatched: a pass
# polling one of them needs no new one (the job is the same object while the spec is).
SUBMISSIONS: dict[tuple[str, str], tuple[Job | None, Submission]] = {}
# Executors whose runs are processes of this host: a power cut ends them with the pass.
_DIES_WITH_HOST = frozenset({"local", "inprocess"})
# local and inprocess executors by name, with the configuration they were made from.
_LOCAL_EXECUTORS: dict[str, tuple[Any, Executor]] = {}
# A process starts a new shared status file past this size (`talon watch` lives long).
STATUS_FILE_BYTES = 1 << 20
# Per state directory: the name of this process's shared status file (see _shared_status).
STATUS_FILE_NAMES: dict[str, str] = {}


class Submitting(Recording):
    """Executors and submissions."""

    def executor(self, name: str) -> Executor:
        if name not in self._executors:
            cfg = self.spec.config.executors[name]
            kept = _LOCAL_EXECUTORS.get(name)
            if kept is not None and kept[0] is cfg:
                self._executors[name] = kept[1]
            else:
                from talon.executors.registry import executor_for

                self._executors[name] = executor_for(cfg.type, cfg.options, lambda: self.now)
                if cfg.type in _DIES_WITH_HOST:
                    # Stateless between calls: the passes of one process share it.
                    _LOCAL_EXECUTORS[name] = (cfg, self._executors[name])
        return self._executors[name]

    def submission(self, run: Run, job: Job, grants: Sequence[Mapping[str, Any]]) -> Submission:
        root = self.spec.config.root
        values = values_for(
            job=job.name, run_id=run.id, period=run.period, params=run.params, resources=grants
        )
        command: str | tuple[str, ...]
        expansions: dict[str, str] = {}  # the values a string command expands (see below)
        if job.call is not None:
            command = job.call
        elif isinstance(job.command, tuple):
            command = tuple(substitute(a, values, quote=False) for a in job.command)
        else:
            # Values reach a shell as parameter expansions, never as text it reads again.
            command, expansions = substitute_shell(job.command or "", values)
        env = {k: substitute(v, values, quote=False) for k, v in job.env.items()}
        env.update(
            {
                "TALON_RUN_ID": run.id,
                "TALON_JOB": job.name,
                "TALON_PERIOD": run.period["key"],
                "TALON_PERIOD_TYPE": run.period["type"],
                "TALON_PERIOD_START": run.period["start"],
                "TALON_PERIOD_END": run.period["end"],
                "TALON_RUN_FILE": os.path.join(self._abs_state, self._rel(run)),
                "TALON_REPO": self._abs_root,
                "TALON_PARAMS": __import__("json").dumps(dict(run.params), sort_keys=True),
                **expansions,
            }
        )
        cfg = self.spec.config.executors[job.executor]
        options = {
            k: substitute(v, values, quote=False) if isinstance(v, str) else v
            for k, v in cfg.options.items()
        }
        if job.host is not None:
            options["host"] = substitute(job.host, values, quote=False)
        workdir = root / job.workdir if job.workdir else root
        return Submission(
            run_id=run.id,
            job=job.name,
            command=command,
            env=env,
            log_path=self.store.log_path(run),
            status_dir=self.store.book / "proc",
            shared_status=self._shared_status(),
            workdir=workdir,
            timeout_s=job.timeout_s,
            config=options,
            resources=tuple({"path": g.get("path"), **(g.get("attrs") or {})} for g in grants),
        )

    def submission_for(self, run: Run) -> tuple[Submission, Executor] | None:
        """Rebuild the submission of a running run (its job may have changed or gone)."""
        exec_info = run.executor or {}
        name = str(exec_info.get("name", ""))
        job = self.spec.jobs.get(run.job)
        if name not in self.spec.config.executors:
            return None
        kept = SUBMISSIONS.get((self._abs_state, run.id))
        if kept is not None and kept[0] is job:
            return kept[1], self.executor(name)  # as dispatched by this process
        if job is None:
            job = placeholder_job(run, name)
        try:
            sub = self.submission(run, job, run.resources)
        except PlaceholderError:
            sub = Submission(
                run.id, run.job, "", {}, self.store.log_path(run), self.store.book / "proc"
            )
        return sub, self.executor(name)

    def _stop(self, run: Run, why: str) -> None:
        """Stop a run this pass knows started but whose file says it must not run (cancelled
        meanwhile)."""
        found = self.submission_for(run)
        handle = (run.executor or {}).get("handle")
        if found is None or handle is None:
            return
        try:
            found[1].cancel(handle, found[0])
        except Exception as exc:  # an unreachable host: say so, the run stays as its file says
            self.problems.append(f"{run.id}: {why}; stopping it failed: {exc}")

    def _outlives_a_crash_here(self, job: Job) -> bool:
        """Whether a run of `job` could survive this host losing power. Only then must its
        intent be on disk before it starts: a local run dies with the host, together with the
        intent still in memory, and the next pass fires its trigger again as if it had never
        been (a kill -9 of the pass loses no intent either: the page cache outlives it). On
        shared storage (lockfile mode, NFS) the files outlive this host, so always."""
        kind = self.spec.config.executors[job.executor].type
        return kind not in _DIES_WITH_HOST or self.store.lock_mode != "flock"

    def _shared_status(self) -> Path | None:
        """The status file the local runs this process starts share (local.py), while the
        state directory is this host's alone: appends from several hosts over NFS may tear."""
        if self.store.lock_mode != "flock":
            return None
        if self._status_path is not None:
            return self._status_path
        key = str(self.store.book)
        name = STATUS_FILE_NAMES.get(key)
        if name is None or self._status_full(self.store.book / "proc" / name):
            from talon.executors.local import shared_status_name

            name = shared_status_name(generation=_next_generation(name))
            STATUS_FILE_NAMES[key] = name
        self._status_path = self.store.book / "proc" / name
        return self._status_path

    def _status_full(self, path: Path) -> bool:
        """Whether a long-lived process (`talon watch`) should start a new status file: looked
        at once per pass, past STATUS_FILE_BYTES (its runs prune the old one when they end)."""
        try:
            return os.stat(path).st_size > STATUS_FILE_BYTES
        except FileNotFoundError:
            return False


def close_spares() -> None:
    """Let the spare wrappers of this process's local executors go (end of `--wait`)."""
    from talon.executors.local import LocalExecutor

    for _cfg, executor in _LOCAL_EXECUTORS.values():
        if isinstance(executor, LocalExecutor):
            executor.close_spare()


def _next_generation(name: str | None) -> int:
    if name is None:
        return 0
    stem = name[: -len(".status")]
    return int(stem.rsplit("-", 1)[1]) + 1 if stem.count("-") >= 2 else 1
