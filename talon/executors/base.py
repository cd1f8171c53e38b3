"""The executor interface: submit, poll, cancel, with a persisted handle.

An executor never holds state between calls that is not in the handle: the handle is stored in
the run file, and a *later process* (the next `talon reconcile`) must be able to poll or cancel
the run from the handle alone. That is what lets a run outlive the pass that started it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

# A handle is plain JSON data (it is written into the run file), e.g. {"pid": 123, "start": ...}
# or {"job_id": "42"}. Executors put whatever they need to find the run again in it.
Handle = dict[str, Any]


@dataclass(frozen=True)
class Submission:
    """Everything an executor needs to start one run. Values are already substituted."""

    run_id: str
    job: str
    # Either a shell string (run by /bin/sh -c, values already shell-quoted) or an argv list.
    command: str | tuple[str, ...]
    env: Mapping[str, str]  # the full set of variables to add (TALON_*, job env, secrets)
    log_path: Path  # where the run's combined stdout/stderr must end up (locally)
    status_dir: Path  # a local directory the executor may use for status files (pid, rc)
    workdir: Path | None = None  # working directory; None means the repository root (local)
    timeout_s: float | None = None
    # Executor configuration from talon.yaml (e.g. {"type": "sge", "queue": "all.q"}).
    config: Mapping[str, Any] = field(default_factory=dict)
    # Attributes of the resources allocated to the run, in request order (e.g. address).
    resources: tuple[Mapping[str, Any], ...] = ()
    # A status file the local executors may share among the runs one process starts (see
    # talon.executors.local); None: one status file per run.
    shared_status: Path | None = None


@dataclass(frozen=True)
class Running:
    """The run is alive (queued or executing), or cannot be reached since `unreachable_since`:
    the caller then decides, with the executor's lease, when that becomes a loss."""

    detail: str = ""
    unreachable_since: datetime | None = None


@dataclass(frozen=True)
class Finished:
    """The run ended; exit_code is the process's exit status (128+N for a signal N), `ended`
    when it did (epoch seconds), where the executor knows."""

    exit_code: int
    detail: str = ""
    ended: float | None = field(default=None, compare=False)  # (how it ended is the outcome)


@dataclass(frozen=True)
class Lost:
    """The executor can no longer account for the run (gone without a status, job vanished)."""

    reason: str


Status = Running | Finished | Lost


class SubmitRefused(Exception):
    """The executor will not start this run now; the reason is shown to the user.

    `retryable` tells the caller whether to leave the run waiting (host down, queue full)
    or fail it (unknown host key, bad configuration).
    """

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class PendingSubmit(Protocol):
    """A start under way (`submit_soon`, an optional method of executors that can start runs
    in the background): `result` waits for it and returns the handle, or raises what `submit`
    would have raised."""

    def ready(self) -> bool:
        """Whether `result` would return without waiting."""
        ...

    def result(self) -> Handle: ...


class Executor(Protocol):
    """One backend (local, inprocess, ssh, sge, slurm)."""

    def submit(self, sub: Submission) -> Handle:
        """Start the run and return its handle. Raise SubmitRefused if it cannot start."""
        ...

    def poll(self, handle: Handle, sub: Submission) -> Status:
        """Say whether the run is alive or how it ended. Must work from a fresh process."""
        ...

    def cancel(self, handle: Handle, sub: Submission) -> None:
        """Stop the run if it is alive; idempotent."""
        ...

    def adopt(self, sub: Submission) -> Handle | None:
        """Find a run submitted by a pass that died before recording its handle, if any.

        Cluster executors look the job up by name (`talon-<run-id>`); others return None.
        """
        ...
