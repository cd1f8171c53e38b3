"""Loading a repository: YAML files → schema checks → typed `Spec` plus every located problem.

The schemas say what a file may contain; this module adds what a schema cannot express
(references between jobs, cycles, cron and phrase syntax, time zones, resource selectors)
and builds the frozen model. It never stops at the first problem.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime, time
from pathlib import Path
from typing import Any

from talon import schema
from talon.discover import CONFIG_FILE, yaml_files
from talon.durations import parse_duration
from talon.model import (
    DEFAULT_MAX_CATCHUP,
    DEFAULT_POLL_S,
    JOB_NAME_RE,
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
from talon.resources import leaves_of
from talon.specchecks import check_names, check_placeholders, check_references
from talon.specfile import File, Loader, items, mapping, text, unknown, valid_tz, whole
from talon.triggers import (
    DstPolicy,
    Trigger,
    TriggerSyntaxError,
    parse_trigger,
)
from talon.yamlfile import KeyPath

BUILTIN_CONSTRAINTS = frozenset(
    {"start_by", "after", "once_per_period", "max_running", "max_blocked"}
)
BUILTIN_EXECUTORS: dict[str, dict[str, Any]] = {
    "local": {"type": "local"},
    "inprocess": {"type": "inprocess"},
}
_CRON_FIELD = re.compile(r"^[0-9*?,/\-]+$")


def load_spec(root: Path) -> tuple[Spec | None, list[Problem]]:
    """Everything in the repository, or None when talon.yaml itself is unusable."""
    ld = Loader(root)
    cfg_file = ld.load(root / CONFIG_FILE, "talon")
    config = _build_config(ld, root, cfg_file)
    leaves: list[ResourceLeaf] = []
    for path in yaml_files(root / "resources"):
        f = ld.load(path, "resources")
        if f is not None and isinstance(f.loaded.data, dict):
            leaves.extend(leaves_of(path.stem, f.loaded.data))
    jobs: dict[str, Job] = {}
    where: dict[str, File] = {}
    cfg_defaults = mapping(mapping(cfg_file.loaded.data).get("defaults")) if cfg_file else {}
    if cfg_file is not None:
        cfg_defaults = _checked_defaults(ld, cfg_file, cfg_defaults)
    entries: list[tuple[File, str, dict[str, Any]]] = []
    first_seen: dict[str, tuple[File, str]] = {}
    for path in yaml_files(root / "schedule"):
        f = ld.load(path, "schedule")
        if f is None or not isinstance(f.loaded.data, dict):
            continue
        file_defaults = _checked_defaults(ld, f, mapping(f.loaded.data.get("defaults")))
        for name, raw in mapping(f.loaded.data.get("jobs")).items():
            if not isinstance(raw, dict) or not JOB_NAME_RE.match(name):
                continue  # the schema reports bad names and shapes
            merged = _merge(cfg_defaults, file_defaults, raw)
            if "call" in raw and "executor" not in raw and config is not None:
                # A default executor is for commands; a `call:` runs inprocess unless the job
                # says where (or the default is an inprocess one).
                inherited = config.executors.get(str(merged.get("executor")))
                if inherited is None or inherited.type != "inprocess":
                    merged.pop("executor", None)
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
                # Not a job of the schedule, but its own mistakes are reported all the same.
                with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
                    _build_job(ld, f, name, merged, config)
                continue
            first_seen[name] = (f, name)
            entries.append((f, name, merged))
    names = set(first_seen)
    for f, name, merged in entries:
        check_names(ld, f, name, merged, names)
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
        check_references(ld, config, jobs, where, leaves)
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


def _checked_defaults(ld: Loader, f: File, defaults: dict[str, Any]) -> dict[str, Any]:
    """A file's `defaults`, with an unknown timezone reported once, where it is written, and
    left out: the jobs it would reach fall back to the one above it, instead of each
    reporting it at its own name."""
    tz = defaults.get("timezone")
    if isinstance(tz, str) and not valid_tz(tz):
        ld.problems.append(
            f.problem(("defaults", "timezone"), f"unknown timezone '{tz}'", value=True)
        )
        return {k: v for k, v in defaults.items() if k != "timezone"}
    return defaults


def _build_config(ld: Loader, root: Path, f: File | None) -> Config | None:
    if f is None:
        if not (root / CONFIG_FILE).exists():
            ld.problems.append(
                Problem(CONFIG_FILE, 0, 0, "missing: talon.yaml marks the repository root")
            )
        return None
    data = mapping(f.loaded.data)
    tz = data.get("timezone", "UTC")
    if not isinstance(tz, str):
        tz = "UTC"  # not the jobs' problem: the schema has reported it here
    elif not valid_tz(tz):
        ld.problems.append(f.problem(("timezone",), f"unknown timezone '{tz}'", value=True))
        tz = "UTC"
    state = mapping(data.get("state"))
    executors: dict[str, ExecutorConfig] = {
        n: ExecutorConfig(n, str(o["type"]), o) for n, o in BUILTIN_EXECUTORS.items()
    }
    for name, opts in mapping(data.get("executors")).items():
        if isinstance(opts, dict) and isinstance(opts.get("type"), str):
            executors[name] = ExecutorConfig(name, opts["type"], dict(opts))
    secrets = {}
    for name, src in mapping(data.get("secrets")).items():
        if isinstance(src, dict):
            secrets[name] = SecretSource(name, env=text(src.get("env")), file=text(src.get("file")))
    # A plugin whose target has the wrong type is still a known name: jobs that use it are fine.
    plugins = {
        name: str(target)
        for name, target in mapping(mapping(data.get("plugins")).get("constraints")).items()
    }
    default_exec = text(mapping(data.get("defaults")).get("executor")) or "local"
    if default_exec not in executors:
        ld.problems.append(
            f.problem(
                ("defaults", "executor"), unknown("executor", default_exec, executors), value=True
            )
        )
    return Config(
        root=root,
        timezone=tz,
        state_path=root / (text(state.get("path")) or "state"),
        lock_mode=text(state.get("lock_mode")) or "flock",
        state_type=text(state.get("type")) or "files",
        executors=executors,
        plugins=plugins,
        secrets=secrets,
        default_executor=default_exec,
    )


def _duration(ld: Loader, f: File, at: KeyPath, value: Any) -> float | None:
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


def _string_col(f: File, at: KeyPath, offset: int) -> tuple[int, int]:
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


def _parse_trigger(ld: Loader, f: File, at: KeyPath, raw: Any) -> Trigger | None:
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


def _build_job(
    ld: Loader, f: File, name: str, d: dict[str, Any], config: Config | None
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
    tz = text(d.get("timezone")) or (config.timezone if config else "UTC")
    if not valid_tz(tz):
        ld.problems.append(f.problem((*base, "timezone"), f"unknown timezone '{tz}'", value=True))
        tz = "UTC"
    period = d.get("period", "daily")
    ptype_raw, offset = (
        (period.get("type", "daily"), whole(period.get("offset"), 0))
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
    dst = _dst(mapping(d.get("dst")))
    start = None
    if isinstance(d.get("start"), str):
        start = _parse_start(ld, f, (*base, "start"), d["start"], tz)
    constraints = _build_constraints(ld, f, base, mapping(d.get("constraints")), config)
    resources = tuple(
        _resource_request(r)
        for r in items(d.get("resources"))
        if isinstance(r, dict) and isinstance(r.get("select"), str)
    )
    check_placeholders(ld, f, base, d, triggers, sum(r.count for r in resources))
    executor = text(d.get("executor")) or (
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
        call=text(d.get("call")),
        period_type=ptype,
        period_offset=int(offset),
        timezone=tz,
        triggers=tuple(triggers),
        dst=dst,
        start=start,
        constraints=constraints,
        resources=resources,
        executor=executor,
        host=text(d.get("host")),
        poll_s=poll,
        timeout_s=timeout,
        expected_duration_s=expected,
        retries=whole(d.get("retries"), 0),
        catchup=Catchup(d["catchup"])
        if d.get("catchup") in ("none", "latest", "all")
        else Catchup.LATEST,
        max_catchup=whole(d.get("max_catchup"), DEFAULT_MAX_CATCHUP),
        params=mapping(d.get("params")),
        env={str(k): str(v) for k, v in mapping(d.get("env")).items()},
        secrets=tuple(s for s in items(d.get("secrets")) if isinstance(s, str)),
        workdir=text(d.get("workdir")),
        description=text(d.get("description")) or "",
        hash=digest,
    )


def _dst(raw: Mapping[str, Any]) -> DstPolicy:
    # DstPolicy refuses values outside its enums; the schema has reported them already.
    gap, fold = raw.get("gap"), raw.get("fold")
    return DstPolicy(
        gap="skip" if gap == "skip" else "shift",
        fold=fold if fold in ("first", "last", "both") else None,
    )


def _resource_request(raw: Mapping[str, Any]) -> ResourceRequest:
    # Attributes are scalars: a mistyped `where` value would only add "matches no resource".
    where = {k: v for k, v in mapping(raw.get("where")).items() if isinstance(v, str | int | float)}
    return ResourceRequest(
        select=str(raw["select"]),
        where=where,
        count=whole(raw.get("count"), 1),
        slots=whole(raw.get("slots"), 1),
    )


def _parse_start(ld: Loader, f: File, at: KeyPath, raw: Any, tz: str) -> datetime | None:
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
    ld: Loader, f: File, base: KeyPath, raw: Mapping[str, Any], config: Config | None
) -> Constraints:
    at: KeyPath = (*base, "constraints")
    start_by = None
    sb = raw.get("start_by")
    if isinstance(sb, str | int | float) and not isinstance(sb, bool):
        clock = str(sb)
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", clock)
        if m and int(m[1]) < 24 and int(m[2]) < 60:
            start_by = StartBy(clock=time(int(m[1]), int(m[2])))
        else:
            secs = _duration(ld, f, (*at, "start_by"), sb)
            if secs is not None:
                start_by = StartBy(after_s=secs)
    after: list[AfterDep] = []
    for item in items(raw.get("after")):
        dep = _after_dep(item)
        if dep is not None:
            after.append(dep)
    plugins = []
    known = config.plugins if config else {}
    for key, value in raw.items():
        if key in BUILTIN_CONSTRAINTS:
            continue
        if key not in known:
            msg = unknown("constraint", key, sorted(BUILTIN_CONSTRAINTS | set(known)))
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
        max_running=whole(raw.get("max_running")),
        max_blocked=whole(raw.get("max_blocked")),
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
