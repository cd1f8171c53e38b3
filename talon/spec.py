"""Loading a repository: YAML files → schema checks → typed `Spec` plus every located problem.

The schemas say what a file may contain; this module adds what a schema cannot express
(references between jobs, cycles, cron and phrase syntax, time zones, resource selectors)
and builds the frozen model. It never stops at the first problem.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any, overload

from talon import schema
from talon.discover import CONFIG_FILE, yaml_files
from talon.durations import parse_duration
from talon.model import (
    DEFAULT_MAX_CATCHUP,
    DEFAULT_POLL_S,
    JOB_NAME_PATTERN,
    AfterDep,
    Catchup,
    Config,
    Constraints,
    ExecutorConfig,
    Job,
    PluginCheck,
    ResourceLeaf,
    ResourceRequest,
    SecretSource,
    Source,
    Spec,
    StartBy,
)
from talon.periods import PeriodType
from talon.problems import Problem
from talon.resources import candidates, leaves_of
from talon.triggers import (
    AfterTrigger,
    DstPolicy,
    ExternalTrigger,
    Trigger,
    TriggerSyntaxError,
    parse_trigger,
)
from talon.yamlfile import KeyPath, Loaded, YamlError, load_file

BUILTIN_CONSTRAINTS = frozenset(
    {"start_by", "after", "once_per_period", "max_running", "max_blocked"}
)
BUILTIN_EXECUTORS: dict[str, dict[str, Any]] = {
    "local": {"type": "local"},
    "inprocess": {"type": "inprocess"},
}
_NAME_RE = re.compile(JOB_NAME_PATTERN)
_CRON_FIELD = re.compile(r"^[0-9*?,/\-]+$")


# A value of the wrong type has been reported by the schema at its own place; the builders below
# read it as absent instead of tripping over it, so one mistake is one located problem, never a
# traceback, and a mistake in talon.yaml is not reported again at every job it reaches.


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@overload
def _whole(value: Any, default: int) -> int: ...
@overload
def _whole(value: Any, default: None = None) -> int | None: ...
def _whole(value: Any, default: int | None = None) -> int | None:
    # bool is an int to Python, not to the schema: `retries: yes` is not 1.
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@dataclass
class _File:
    rel: str
    loaded: Loaded

    def at(self, path: KeyPath, *, value: bool = False) -> tuple[int, int]:
        return self.loaded.position(path, value=value)

    def problem(self, path: KeyPath, message: str, *, value: bool = False) -> Problem:
        line, col = self.at(path, value=value)
        return Problem(self.rel, line, col, message)


@dataclass
class _Loader:
    root: Path
    problems: list[Problem] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def load(self, path: Path, schema_name: str) -> _File | None:
        rel = self.rel(path)
        try:
            loaded = load_file(path)
        except YamlError as exc:
            self.problems.append(Problem(rel, exc.line, exc.col, exc.message))
            return None
        if loaded.data is None:
            loaded = Loaded({}, {}, {}, loaded.lines)
        found = schema.check(schema_name, loaded, rel)
        self.problems.extend(found)
        f = _File(rel, loaded)
        return None if found and not isinstance(loaded.data, dict) else f


def load_spec(root: Path) -> tuple[Spec | None, list[Problem]]:
    """Everything in the repository, or None when talon.yaml itself is unusable."""
    ld = _Loader(root)
    cfg_file = ld.load(root / CONFIG_FILE, "talon")
    config = _build_config(ld, root, cfg_file)
    leaves: list[ResourceLeaf] = []
    for path in yaml_files(root / "resources"):
        f = ld.load(path, "resources")
        if f is not None and isinstance(f.loaded.data, dict):
            leaves.extend(leaves_of(path.stem, f.loaded.data))
    jobs: dict[str, Job] = {}
    where: dict[str, _File] = {}
    cfg_defaults = _mapping(_mapping(cfg_file.loaded.data).get("defaults")) if cfg_file else {}
    if cfg_file is not None:
        cfg_defaults = _checked_defaults(ld, cfg_file, cfg_defaults)
    entries: list[tuple[_File, str, dict[str, Any]]] = []
    first_seen: dict[str, tuple[_File, str]] = {}
    for path in yaml_files(root / "schedule"):
        f = ld.load(path, "schedule")
        if f is None or not isinstance(f.loaded.data, dict):
            continue
        file_defaults = _checked_defaults(ld, f, _mapping(f.loaded.data.get("defaults")))
        for name, raw in _mapping(f.loaded.data.get("jobs")).items():
            if not isinstance(raw, dict) or not _NAME_RE.match(name):
                continue  # the schema reports bad names and shapes
            if name.endswith("\n"):  # (the schema's `$`, in Python, lets one through)
                line, col = f.at(("jobs", name))
                ld.problems.append(
                    Problem(
                        f.rel, line, col, f"job name {name!r} is not allowed: it ends in a newline"
                    )
                )
                continue
            if name in first_seen:
                other, _ = first_seen[name]
                line, col = f.at(("jobs", name))
                oline, ocol = other.at(("jobs", name))
                ld.problems.append(
                    Problem(
                        f.rel,
                        line,
                        col,
                        f"duplicate job name '{name}', first defined at {other.rel}:{oline}:{ocol}",
                    )
                )
                ld.problems.append(
                    Problem(
                        other.rel,
                        oline,
                        ocol,
                        f"duplicate job name '{name}', also defined at {f.rel}:{line}:{col}",
                    )
                )
                continue
            first_seen[name] = (f, name)
            entries.append((f, name, _merge(cfg_defaults, file_defaults, raw)))
    names = set(first_seen)
    for f, name, merged in entries:
        _check_names(ld, f, name, merged, names)
        before = len(ld.problems)
        try:
            job = _build_job(ld, f, name, merged, config)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # A shape the schema rejects: it has said so at the exact place already.
            job = None
            if len(ld.problems) == before and not any(p.path == f.rel for p in ld.problems):
                ld.problems.append(f.problem(("jobs", name), f"job '{name}' cannot be read: {exc}"))
        if job is not None:
            jobs[name] = job
            where[name] = f
    if config is not None:
        _check_references(ld, config, jobs, where, leaves)
    problems = sorted(set(ld.problems))
    if config is None:
        return None, problems
    return Spec(config, jobs, tuple(leaves)), problems


def _merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; params, env and constraints merge one level deep."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in ("params", "env", "constraints") and isinstance(value, dict):
                base = out.get(key)
                out[key] = {**(base if isinstance(base, dict) else {}), **value}
            else:
                out[key] = value
    return out


def _checked_defaults(ld: _Loader, f: _File, defaults: dict[str, Any]) -> dict[str, Any]:
    """A file's `defaults`, with an unknown timezone reported once, where it is written, and
    left out: the jobs it would reach fall back to the one above it, instead of each
    reporting it at its own name."""
    tz = defaults.get("timezone")
    if isinstance(tz, str) and not _valid_tz(tz):
        ld.problems.append(
            f.problem(("defaults", "timezone"), f"unknown timezone '{tz}'", value=True)
        )
        return {k: v for k, v in defaults.items() if k != "timezone"}
    return defaults


def _build_config(ld: _Loader, root: Path, f: _File | None) -> Config | None:
    if f is None:
        if not (root / CONFIG_FILE).exists():
            ld.problems.append(
                Problem(CONFIG_FILE, 0, 0, "missing: talon.yaml marks the repository root")
            )
        return None
    data = _mapping(f.loaded.data)
    tz = data.get("timezone", "UTC")
    if not isinstance(tz, str):
        tz = "UTC"  # not the jobs' problem: the schema has reported it here
    elif not _valid_tz(tz):
        ld.problems.append(f.problem(("timezone",), f"unknown timezone '{tz}'", value=True))
        tz = "UTC"
    state = _mapping(data.get("state"))
    executors: dict[str, ExecutorConfig] = {
        n: ExecutorConfig(n, str(o["type"]), o) for n, o in BUILTIN_EXECUTORS.items()
    }
    for name, opts in _mapping(data.get("executors")).items():
        if isinstance(opts, dict) and isinstance(opts.get("type"), str):
            executors[name] = ExecutorConfig(name, opts["type"], dict(opts))
    secrets = {}
    for name, src in _mapping(data.get("secrets")).items():
        if isinstance(src, dict):
            secrets[name] = SecretSource(
                name, env=_text(src.get("env")), file=_text(src.get("file"))
            )
    # A plugin whose target has the wrong type is still a known name: jobs that use it are fine.
    plugins = {
        name: str(target)
        for name, target in _mapping(_mapping(data.get("plugins")).get("constraints")).items()
    }
    default_exec = _text(_mapping(data.get("defaults")).get("executor")) or "local"
    if default_exec not in executors:
        ld.problems.append(
            f.problem(
                ("defaults", "executor"), _unknown("executor", default_exec, executors), value=True
            )
        )
    return Config(
        root=root,
        timezone=tz,
        state_path=root / (_text(state.get("path")) or "state"),
        lock_mode=_text(state.get("lock_mode")) or "flock",
        state_type=_text(state.get("type")) or "files",
        executors=executors,
        plugins=plugins,
        secrets=secrets,
        default_executor=default_exec,
    )


def _valid_tz(name: str) -> bool:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return False
    return True


def _unknown(kind: str, name: str, known: Mapping[str, Any] | list[str]) -> str:
    hint = difflib.get_close_matches(name, list(known), n=1)
    did = f" (did you mean '{hint[0]}'?)" if hint else ""
    return f"unknown {kind} '{name}'{did}"


def _duration(ld: _Loader, f: _File, at: KeyPath, value: Any) -> float | None:
    if not isinstance(value, str | int | float):
        return None  # absent, or a shape the schema has reported
    try:
        return parse_duration(value)
    except ValueError as exc:
        problem = f.problem(at, str(exc), value=True)
        # The schema's pattern usually caught it already, at the same place: say it once.
        if not any(
            (p.path, p.line, p.col) == (problem.path, problem.line, problem.col)
            for p in ld.problems
        ):
            ld.problems.append(problem)
        return None


def _string_col(f: _File, at: KeyPath, offset: int) -> tuple[int, int]:
    """Column of character `offset` inside the string value at `at` (past an opening quote)."""
    line, col = f.at(at, value=True)
    lines = f.loaded.lines
    if (
        0 < line <= len(lines)
        and col - 1 < len(lines[line - 1])
        and lines[line - 1][col - 1] in "'\""
    ):
        col += 1
    return line, col + offset


def _parse_trigger(ld: _Loader, f: _File, at: KeyPath, raw: Any) -> Trigger | None:
    if not isinstance(raw, str | dict):
        return None  # shapes the schema rejects are already reported
    try:
        return parse_trigger(raw)
    except (TriggerSyntaxError, ValueError, TypeError) as exc:
        if isinstance(raw, dict) and not schema.accepts("schedule", "triggerOne", raw):
            return None  # the schema has said what is wrong with it, where
        if not isinstance(exc, TriggerSyntaxError):
            ld.problems.append(f.problem(at, f"trigger: {exc}", value=True))
            return None
        if isinstance(raw, str) and exc.column is not None:
            line, col = _string_col(f, at, exc.column)
        else:
            line, col = f.at(at, value=True)
        ld.problems.append(Problem(f.rel, line, col, f"trigger: {exc.message}"))
    return None


def _check_names(ld: _Loader, f: _File, name: str, d: Mapping[str, Any], names: set[str]) -> None:
    """References to other jobs, checked against every defined name (valid or not)."""
    base: KeyPath = ("jobs", name)
    after = (
        (d.get("constraints") or {}).get("after")
        if isinstance(d.get("constraints"), dict)
        else None
    )
    for i, item in enumerate(after if isinstance(after, list) else []):
        target = item.get("job") if isinstance(item, dict) else item
        if isinstance(target, str) and target not in names:
            at = (*base, "constraints", "after", i)
            ld.problems.append(
                f.problem(at, f"after: {_unknown('job', target, sorted(names))}", value=True)
            )
    raw = d.get("trigger")
    for i, trig in enumerate(raw if isinstance(raw, list) else [raw]):
        if (
            isinstance(trig, dict)
            and isinstance(trig.get("after"), str)
            and trig["after"] not in names
        ):
            at = (*base, "trigger", i) if isinstance(raw, list) else (*base, "trigger")
            ld.problems.append(
                f.problem(
                    at, f"trigger: {_unknown('job', trig['after'], sorted(names))}", value=True
                )
            )


def _build_job(
    ld: _Loader, f: _File, name: str, d: dict[str, Any], config: Config | None
) -> Job | None:
    base: KeyPath = ("jobs", name)
    line, col = f.at(base)
    has_cmd, has_call = "command" in d, "call" in d
    if has_cmd == has_call:
        what = "both 'command' and 'call'" if has_cmd else "neither 'command' nor 'call'"
        ld.problems.append(Problem(f.rel, line, col, f"job '{name}' has {what}: give exactly one"))
    command: str | tuple[str, ...] | None = None
    if isinstance(d.get("command"), str):
        command = d["command"]
    elif isinstance(d.get("command"), list):
        command = tuple(str(a) for a in d["command"])
    tz = _text(d.get("timezone")) or (config.timezone if config else "UTC")
    if not _valid_tz(tz):
        ld.problems.append(f.problem((*base, "timezone"), f"unknown timezone '{tz}'", value=True))
        tz = "UTC"
    period = d.get("period", "daily")
    ptype_raw, offset = (
        (period.get("type", "daily"), _whole(period.get("offset"), 0))
        if isinstance(period, dict)
        else (period, 0)
    )
    try:
        ptype = PeriodType(ptype_raw)
    except ValueError:
        ptype = PeriodType.DAILY  # the schema reports the bad value
    raw_triggers = d.get("trigger", [])
    trig_list = raw_triggers if isinstance(raw_triggers, list) else [raw_triggers]
    triggers: list[Trigger] = []
    for i, raw in enumerate(trig_list):
        at = (*base, "trigger", i) if isinstance(raw_triggers, list) else (*base, "trigger")
        t = _parse_trigger(ld, f, at, raw)
        if t is not None:
            triggers.append(t)
    dst = _dst(_mapping(d.get("dst")))
    start = None
    if isinstance(d.get("start"), str):
        start = _parse_start(ld, f, (*base, "start"), d["start"], tz)
    constraints = _build_constraints(ld, f, base, _mapping(d.get("constraints")), config)
    resources = tuple(
        _resource_request(r)
        for r in _items(d.get("resources"))
        if isinstance(r, dict) and isinstance(r.get("select"), str)
    )
    _check_placeholders(ld, f, base, d, triggers, sum(r.count for r in resources))
    executor = _text(d.get("executor")) or (
        "inprocess"
        if has_call and not has_cmd
        else (config.default_executor if config else "local")
    )
    poll = _duration(ld, f, (*base, "poll"), d.get("poll")) or DEFAULT_POLL_S
    timeout = _duration(ld, f, (*base, "timeout"), d.get("timeout"))
    expected = _duration(ld, f, (*base, "expected_duration"), d.get("expected_duration"))
    digest = hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Job(
        name=name,
        source=Source(f.rel, line, col),
        command=command,
        call=_text(d.get("call")),
        period_type=ptype,
        period_offset=int(offset),
        timezone=tz,
        triggers=tuple(triggers),
        dst=dst,
        start=start,
        constraints=constraints,
        resources=resources,
        executor=executor,
        host=_text(d.get("host")),
        poll_s=poll,
        timeout_s=timeout,
        expected_duration_s=expected,
        retries=_whole(d.get("retries"), 0),
        catchup=Catchup(d["catchup"])
        if d.get("catchup") in ("none", "latest", "all")
        else Catchup.LATEST,
        max_catchup=_whole(d.get("max_catchup"), DEFAULT_MAX_CATCHUP),
        params=_mapping(d.get("params")),
        env={str(k): str(v) for k, v in _mapping(d.get("env")).items()},
        secrets=tuple(s for s in _items(d.get("secrets")) if isinstance(s, str)),
        workdir=_text(d.get("workdir")),
        description=_text(d.get("description")) or "",
        hash=digest,
    )


def _check_placeholders(
    ld: _Loader,
    f: _File,
    base: KeyPath,
    d: Mapping[str, Any],
    triggers: list[Trigger],
    granted: int,
) -> None:
    """Placeholders every run of the job would fail on (see placeholders.unknown_in). Runs
    fired by a schedule or another job carry the job's own params only; a job triggered by
    hand alone may be given any (`talon trigger --param`)."""
    from talon.placeholders import unknown_in

    fired = any(not isinstance(t, ExternalTrigger) for t in triggers)
    params = _mapping(d.get("params")) if fired else None
    templates: list[tuple[KeyPath, str]] = []
    command = d.get("command")
    if isinstance(command, str):
        templates.append(((*base, "command"), command))
    for i, arg in enumerate(_items(command)):
        templates.append(((*base, "command", i), str(arg)))
    for key, value in _mapping(d.get("env")).items():
        templates.append(((*base, "env", key), str(value)))
    if isinstance(d.get("host"), str):
        templates.append(((*base, "host"), d["host"]))
    for at, text in templates:
        for message in unknown_in(text, params, granted):
            ld.problems.append(f.problem(at, message, value=True))


def _dst(raw: Mapping[str, Any]) -> DstPolicy:
    # DstPolicy refuses values outside its enums; the schema has reported them already.
    gap, fold = raw.get("gap"), raw.get("fold")
    return DstPolicy(
        gap="skip" if gap == "skip" else "shift",
        fold=fold if fold in ("first", "last", "both") else None,
    )


def _resource_request(raw: Mapping[str, Any]) -> ResourceRequest:
    # Attributes are scalars: a mistyped `where` value would only add "matches no resource".
    where = {
        k: v for k, v in _mapping(raw.get("where")).items() if isinstance(v, str | int | float)
    }
    return ResourceRequest(
        select=str(raw["select"]),
        where=where,
        count=_whole(raw.get("count"), 1),
        slots=_whole(raw.get("slots"), 1),
    )


def _parse_start(ld: _Loader, f: _File, at: KeyPath, raw: Any, tz: str) -> datetime | None:
    from zoneinfo import ZoneInfo

    try:
        value = datetime.fromisoformat(str(raw))
    except ValueError:
        ld.problems.append(
            f.problem(at, f"start: '{raw}' is not an ISO-8601 date or datetime", value=True)
        )
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value


def _build_constraints(
    ld: _Loader, f: _File, base: KeyPath, raw: Mapping[str, Any], config: Config | None
) -> Constraints:
    at: KeyPath = (*base, "constraints")
    start_by = None
    sb = raw.get("start_by")
    if isinstance(sb, str | int | float) and not isinstance(sb, bool):
        text = str(sb)
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
        if m and int(m[1]) < 24 and int(m[2]) < 60:
            start_by = StartBy(clock=time(int(m[1]), int(m[2])))
        else:
            secs = _duration(ld, f, (*at, "start_by"), sb)
            if secs is not None:
                start_by = StartBy(after_s=secs)
    after: list[AfterDep] = []
    for item in _items(raw.get("after")):
        dep = _after_dep(item)
        if dep is not None:
            after.append(dep)
    plugins = []
    known = config.plugins if config else {}
    for key, value in raw.items():
        if key in BUILTIN_CONSTRAINTS:
            continue
        if key not in known:
            msg = _unknown("constraint", key, sorted(BUILTIN_CONSTRAINTS | set(known)))
            ld.problems.append(
                f.problem(
                    (*at, key),
                    f"{msg}; plugin constraints are named in talon.yaml plugins.constraints",
                )
            )
            continue
        plugins.append(PluginCheck(key, known[key], value))
    return Constraints(
        start_by=start_by,
        after=tuple(after),
        once_per_period=raw.get("once_per_period") is True,
        max_running=_whole(raw.get("max_running")),
        max_blocked=_whole(raw.get("max_blocked")),
        plugins=tuple(plugins),
    )


def _after_dep(item: Any) -> AfterDep | None:
    """One `after` item, or None for a shape the schema has reported (guessing `same` for a
    mistyped period could invent a dependency cycle)."""
    if isinstance(item, str):
        return AfterDep(item)
    if not isinstance(item, dict) or not isinstance(item.get("job"), str):
        return None
    period = item.get("period", "same")
    if period == "previous":
        return AfterDep(item["job"], "previous")
    return AfterDep(item["job"]) if period == "same" else None


def _check_references(
    ld: _Loader,
    config: Config,
    jobs: Mapping[str, Job],
    where: Mapping[str, _File],
    leaves: list[ResourceLeaf],
) -> None:
    for name, job in jobs.items():
        f = where[name]
        base: KeyPath = ("jobs", name)
        if job.executor not in config.executors and job.executor != config.default_executor:
            ld.problems.append(
                f.problem(
                    (*base, "executor"),
                    _unknown("executor", job.executor, config.executors),
                    value=True,
                )
            )
        for secret in job.secrets:
            if secret not in config.secrets:
                ld.problems.append(
                    f.problem(
                        (*base, "secrets"), _unknown("secret", secret, config.secrets), value=True
                    )
                )
        for i, req in enumerate(job.resources):
            if not candidates(leaves, req):
                where_txt = "".join(f", {k}={v}" for k, v in req.where.items())
                ld.problems.append(
                    f.problem(
                        (*base, "resources", i),
                        f"resources: selector '{req.select}'{where_txt} matches no resource",
                        value=True,
                    )
                )
            elif req.count > len(candidates(leaves, req)):
                ld.problems.append(
                    f.problem(
                        (*base, "resources", i),
                        f"resources: '{req.select}' asks for {req.count} "
                        f"but only {len(candidates(leaves, req))} match",
                        value=True,
                    )
                )
    for cycle in _cycles(jobs):
        first = jobs[cycle[0]]
        steps = []
        for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
            how = (
                "waits for"
                if any(d.job == b for d in jobs[a].constraints.after)
                else "is triggered by"
            )
            steps.append(f"{a} {how} {b}")
        ld.problems.append(
            Problem(
                first.source.path,
                first.source.line,
                first.source.col,
                f"dependency cycle: {'; '.join(steps)}",
            )
        )


def _edges(job: Job) -> Iterator[str]:
    for dep in job.constraints.after:
        if dep.period == "same":
            yield dep.job
    for trig in job.triggers:
        if isinstance(trig, AfterTrigger):
            yield trig.job


def _cycles(jobs: Mapping[str, Job]) -> list[list[str]]:
    """Each cycle once, found iteratively (a 10,000-deep chain must not hit the recursion limit).

    An edge a -> b means a waits for b. An `after` on the *previous* period is not an edge: it
    looks back in time, so it cannot deadlock.
    """
    graph = {name: sorted({d for d in _edges(job) if d in jobs}) for name, job in jobs.items()}
    color: dict[str, int] = {}
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if color.get(root):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        on_path = [root]
        color[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = 2
                stack.pop()
                on_path.pop()
                continue
            state = color.get(nxt, 0)
            if state == 1:
                cycles.append(on_path[on_path.index(nxt) :])
            elif state == 0:
                color[nxt] = 1
                on_path.append(nxt)
                stack.append((nxt, iter(graph[nxt])))
    return cycles
