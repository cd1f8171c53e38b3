"""A run record: one execution attempt of a job for a period, as stored in its JSON file.

Runs are plain data with a fixed key order so that `git diff state/` reads like a log and
`grep '"state": "failed"'` works. Transitions go through `transition`, which appends to
`history`, so no state change is ever unrecorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any


class State(StrEnum):
    BLOCKED = "blocked"
    READY = "ready"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def terminal(self) -> bool:
        return self in (State.SUCCEEDED, State.FAILED, State.SKIPPED)


OPEN_STATES = frozenset({State.BLOCKED, State.READY, State.RUNNING})

# The order of keys in a run file. Unknown keys found in a file are kept, after these.
FIELD_ORDER = (
    "id",
    "job",
    "state",
    "reason",
    "period",
    "trigger",
    "attempt",
    "created",
    "started",
    "finished",
    "exit_code",
    "executor",
    "dispatch",
    "resources",
    "params",
    "progress",
    "artifacts",
    "checks",
    "revision",
    "job_hash",
    "history",
)


def iso(t: datetime | None) -> str | None:
    """ISO-8601 with offset, to the second (sub-second noise would churn diffs)."""
    if t is None:
        return None
    return t.isoformat(timespec="seconds")


@dataclass(frozen=True)
class Run:
    """The in-memory run; `extra` keeps fields Talon does not know, so nothing is lost."""

    id: str
    job: str
    state: State
    period: Mapping[str, str]  # {type, key, start, end}
    trigger: Mapping[str, Any]  # {type, at, ...}
    created: str
    attempt: int = 1
    reason: str | None = None
    started: str | None = None
    finished: str | None = None
    exit_code: int | None = None
    executor: Mapping[str, Any] | None = None  # {name, type, handle}
    dispatch: Mapping[str, Any] | None = None  # intent recorded before submitting
    resources: tuple[Mapping[str, Any], ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    progress: Mapping[str, Any] | None = None
    artifacts: tuple[Mapping[str, Any], ...] = ()
    checks: tuple[Mapping[str, Any], ...] = ()
    revision: Mapping[str, Any] | None = None
    job_hash: str = ""
    history: tuple[Mapping[str, Any], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def period_key(self) -> str:
        return self.period["key"]

    def transition(
        self,
        state: State,
        at: datetime,
        reason: str | None = None,
        *,
        why: str | None = None,
        **changes: Any,
    ) -> Run:
        """A new run in `state`, with the change appended to history; `why`, when given, is
        the history entry's reason (a fuller one than the run's: see plan.settle)."""
        entry = {"at": iso(at), "state": state.value, "reason": why or reason}
        return self.but(state=state, reason=reason, history=(*self.history, entry), **changes)

    def but(self, **changes: Any) -> Run:
        """`dataclasses.replace` for the one class a pass copies thousands of times: a copy of
        the instance's fields with `changes` applied, at a tenth of replace's cost (which
        calls __init__, and through it the frozen __setattr__, for every field)."""
        unknown = changes.keys() - RUN_FIELDS
        if unknown:
            raise TypeError(f"Run has no field(s) {sorted(unknown)}")
        new = object.__new__(Run)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    @property
    def relpath(self) -> str:
        """Where its file lies under the state directory (`period/job/id.json`)."""
        return f"{self.period_key}/{self.job}/{self.id}.json"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "job": self.job,
            "state": self.state.value,
            "reason": self.reason,
            "period": dict(self.period),
            "trigger": dict(self.trigger),
            "attempt": self.attempt,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "exit_code": self.exit_code,
            "executor": dict(self.executor) if self.executor is not None else None,
            "dispatch": dict(self.dispatch) if self.dispatch is not None else None,
            "resources": [dict(r) for r in self.resources],
            "params": dict(self.params),
            "progress": dict(self.progress) if self.progress is not None else None,
            "artifacts": [dict(a) for a in self.artifacts],
            "checks": [dict(c) for c in self.checks],
            "revision": dict(self.revision) if self.revision is not None else None,
            "job_hash": self.job_hash,
            "history": [dict(h) for h in self.history],
        }
        for key, value in self.extra.items():
            data.setdefault(key, value)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Run:
        """Raises KeyError/ValueError/TypeError on a malformed record (the store reports it).

        The types are checked here, field by field, as `schemas/run.schema.json` states them:
        a pass reads open runs on every tick, and loading jsonschema for that would cost more
        than the whole no-op pass. `talon fsck` and the tests apply the schema itself.
        """
        _check_types(data)
        known = set(FIELD_ORDER)
        return cls(
            id=str(data["id"]),
            job=str(data["job"]),
            state=State(data["state"]),
            period=dict(data["period"]),
            trigger=dict(data.get("trigger") or {}),
            created=str(data["created"]),
            attempt=int(data.get("attempt", 1)),
            reason=data.get("reason"),
            started=data.get("started"),
            finished=data.get("finished"),
            exit_code=data.get("exit_code"),
            executor=data.get("executor"),
            dispatch=data.get("dispatch"),
            resources=tuple(data.get("resources") or ()),
            params=dict(data.get("params") or {}),
            progress=data.get("progress"),
            artifacts=tuple(data.get("artifacts") or ()),
            checks=tuple(data.get("checks") or ()),
            revision=data.get("revision"),
            job_hash=str(data.get("job_hash", "")),
            history=tuple(data.get("history") or ()),
            extra={k: v for k, v in data.items() if k not in known},
        )


_STR, _INT, _OBJ, _LIST = (str,), (int,), (dict,), (list,)
RUN_FIELDS = frozenset(f.name for f in fields(Run))

_NULL = (type(None),)
_TYPES: dict[str, tuple[type, ...]] = {
    "id": _STR,
    "job": _STR,
    "state": _STR,
    "reason": _STR + _NULL,
    "period": _OBJ,
    "trigger": _OBJ,
    "attempt": _INT,
    "created": _STR,
    "started": _STR + _NULL,
    "finished": _STR + _NULL,
    "exit_code": _INT + _NULL,
    "executor": _OBJ + _NULL,
    "dispatch": _OBJ + _NULL,
    "resources": _LIST,
    "params": _OBJ,
    "progress": _OBJ + _NULL,
    "artifacts": _LIST,
    "checks": _LIST,
    "revision": _OBJ + _NULL,
    "job_hash": _STR,
    "history": _LIST,
}
_REQUIRED = ("id", "job", "state", "period", "created")


def _check_types(data: Mapping[str, Any]) -> None:
    for key in _REQUIRED:
        if key not in data:
            raise KeyError(f"missing field '{key}'")
    for key, types in _TYPES.items():
        if key in data and (
            not isinstance(data[key], types) or (isinstance(data[key], bool) and bool not in types)
        ):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise TypeError(f"field '{key}' should be {names}, got {json.dumps(data[key])}")
    period = data["period"]
    for key in ("type", "key", "start", "end"):
        if not isinstance(period.get(key), str):
            raise TypeError(f"field 'period.{key}' should be a string")
    if data["state"] not in {s.value for s in State}:
        allowed = ", ".join(s.value for s in State)
        raise ValueError(f"field 'state' is {json.dumps(data['state'])}, not one of {allowed}")


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
_KEY_PREFIX: dict[str, str] = {}


def dumps(run: Run) -> str:
    """The file text: one top-level field a line in a stable order, each list item on a line
    of its own, objects kept on one line; UTF-8, trailing newline.

    Built from one encoder's encode of each value rather than json.dumps(indent=...), which
    falls back to the pure-Python encoder, or json.dumps(ensure_ascii=False), which builds a
    new encoder per call: either costs more than the file write on the hot path.
    """
    encode = _ENCODE
    lines = []
    for key, value in run.to_json().items():
        prefix = _KEY_PREFIX.get(key)
        if prefix is None:
            prefix = _KEY_PREFIX.setdefault(key, f"  {encode(key)}: ")
        if isinstance(value, list) and value:
            items = ",\n    ".join([encode(v) for v in value])
            lines.append(f"{prefix}[\n    {items}\n  ]")
        else:
            lines.append(prefix + encode(value))
    return "{\n" + ",\n".join(lines) + "\n}\n"
