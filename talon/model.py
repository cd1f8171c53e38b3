"""The configuration as typed, frozen values: what `spec.py` builds from the YAML files.

Nothing here does I/O. A `Spec` is everything a decision needs to know about the repository's
files except the state of runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from talon.periods import PeriodType
from talon.triggers import DstPolicy, Trigger

JOB_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# For Python's re: `$` would let a name end in a newline.
JOB_NAME_RE = re.compile(JOB_NAME_PATTERN.removesuffix("$") + r"\Z")
DEFAULT_POLL_S = 60.0
DEFAULT_MAX_CATCHUP = 100


class Catchup(StrEnum):
    NONE = "none"
    LATEST = "latest"
    ALL = "all"


@dataclass(frozen=True)
class Source:
    """Where a definition was written, for messages."""

    path: str  # relative to the repository root
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True)
class StartBy:
    """A deadline: a wall-clock time on the trigger's day, or a duration after the trigger."""

    clock: time | None = None
    after_s: float | None = None

    def describe(self) -> str:
        if self.clock is not None:
            return self.clock.strftime("%H:%M")
        from talon.durations import format_duration

        return format_duration(self.after_s or 0)


@dataclass(frozen=True)
class AfterDep:
    job: str
    period: Literal["same", "previous"] = "same"


@dataclass(frozen=True)
class PluginCheck:
    """A constraint from a plugin named in talon.yaml; `options` is the job's value for it."""

    name: str
    target: str  # "module:attribute"
    options: Any = None


@dataclass(frozen=True)
class Constraints:
    start_by: StartBy | None = None
    after: tuple[AfterDep, ...] = ()
    once_per_period: bool = False
    max_running: int | None = None
    max_blocked: int | None = None
    plugins: tuple[PluginCheck, ...] = ()


@dataclass(frozen=True)
class ResourceRequest:
    select: str  # a glob over the tree, e.g. "hosts/compute/*"
    where: Mapping[str, Any] = field(default_factory=dict)
    count: int = 1
    slots: int = 1


@dataclass(frozen=True)
class Job:
    name: str
    source: Source
    command: str | tuple[str, ...] | None
    call: str | None
    period_type: PeriodType
    period_offset: int
    timezone: str
    triggers: tuple[Trigger, ...]
    dst: DstPolicy
    start: datetime | None
    constraints: Constraints
    resources: tuple[ResourceRequest, ...]
    executor: str
    host: str | None
    poll_s: float
    timeout_s: float | None
    expected_duration_s: float | None
    retries: int
    catchup: Catchup
    max_catchup: int
    params: Mapping[str, Any]
    env: Mapping[str, str]
    secrets: tuple[str, ...]
    workdir: str | None
    description: str
    hash: str  # of the merged definition, recorded in each run so it can be traced


@dataclass(frozen=True)
class ExecutorConfig:
    name: str
    type: str  # local | inprocess | ssh | sge | slurm
    options: Mapping[str, Any]  # the whole mapping from talon.yaml, `type` included


@dataclass(frozen=True)
class SecretSource:
    name: str
    env: str | None = None
    file: str | None = None


@dataclass(frozen=True)
class ResourceLeaf:
    path: str  # "hosts/compute/node1": namespace (file stem) then the keys
    capacity: int
    attrs: Mapping[str, Any]


@dataclass(frozen=True)
class Config:
    root: Path
    timezone: str
    state_path: Path
    lock_mode: str  # "flock" (default) or "lockfile" (NFS-safe, see docs)
    executors: Mapping[str, ExecutorConfig]
    plugins: Mapping[str, str]
    secrets: Mapping[str, SecretSource]
    default_executor: str
    state_type: str = "files"  # which store implementation holds the runs (store.STORES)


@dataclass(frozen=True)
class Spec:
    config: Config
    jobs: Mapping[str, Job]
    resources: tuple[ResourceLeaf, ...]
    revision: Mapping[str, Any] | None = None
