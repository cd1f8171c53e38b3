"""The JSON Schemas in schemas/: valid themselves, described for editors, and right about files.

The example repository and the `talon init` template must validate (they are the demo's input
and the tests' fixture), the example must keep exercising every concept of the SPEC, and a
table of mistakes must each be rejected at the right place.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from talon.yamlfile import load_file

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "schemas"
EXAMPLE = ROOT / "example-repo"
TEMPLATE = ROOT / "talon" / "templates" / "init"
NAMES = ("talon", "schedule", "resources", "run")
EXECUTOR_TYPES = {"local", "inprocess", "ssh", "sge", "slurm"}
MODELINE = "# yaml-language-server: $schema="


@cache
def schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text("utf-8"))
    return data


@cache
def validator(name: str) -> Any:
    # jsonschema ships no type information; importing it by name keeps this module checkable
    # under mypy --strict whether or not stubs are installed.
    cls = importlib.import_module("jsonschema").Draft202012Validator
    return cls(schema(name), format_checker=cls.FORMAT_CHECKER)


def errors(name: str, document: Any) -> list[tuple[str, str]]:
    """(path, message) of every error, the path as "a/b/0" ("" for the top level).

    Like `talon validate`, an anyOf error is replaced by the alternative that came closest.
    """
    best_match = importlib.import_module("jsonschema.exceptions").best_match
    found = []
    for error in validator(name).iter_errors(document):
        best = best_match([error]) if error.context else error
        found.append(("/".join(str(p) for p in best.absolute_path), best.message))
    return found


def schema_for(path: Path, root: Path) -> str:
    """Which schema a repository file follows, from where it is."""
    parts = path.relative_to(root).parts
    if parts == ("talon.yaml",):
        return "talon"
    return {"schedule": "schedule", "resources": "resources"}[parts[0]]


def yaml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if "state" not in p.relative_to(root).parts)


def load(path: Path) -> Any:
    return load_file(path).data


# -- the schemas themselves ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_2020_12(name: str) -> None:
    doc = schema(name)
    importlib.import_module("jsonschema").Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == f"https://talon.dev/schemas/{name}.schema.json"
    assert doc["title"]
    assert doc["description"]


def _subschemas(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema, except those under `if` (conditions, never shown to a user)."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            if key != "if":
                yield from _subschemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _subschemas(value, f"{where}/{i}")


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node and "description" not in node:
        ref = node["$ref"]
        assert ref.startswith("#/$defs/"), f"only local references keep a schema standalone: {ref}"
        node = doc["$defs"][ref.removeprefix("#/$defs/")]
    return node


@pytest.mark.parametrize("name", NAMES)
def test_every_property_has_a_description(name: str) -> None:
    """Editors show them on completion and hover (`true` stubs listing keys are exempt)."""
    doc = schema(name)
    missing = [
        f"{where}/{prop}"
        for where, node in _subschemas(doc, "#")
        for prop, sub in (node.get("properties") or {}).items()
        if isinstance(sub, dict) and not _resolve(doc, sub).get("description")
    ]
    assert missing == []


def test_talon_schema_carries_the_schedule_definitions_unchanged() -> None:
    """talon.yaml `defaults` are job keys: talon.schema.json holds a copy of schedule's $defs
    (so every schema stands alone for validators and editors). Edit schedule.schema.json and
    copy its $defs over; this test says which ones differ."""
    talon_defs, schedule_defs = schema("talon")["$defs"], schema("schedule")["$defs"]
    differ = sorted(k for k, v in schedule_defs.items() if talon_defs.get(k) != v)
    assert differ == []


# -- the example repository and the init template -----------------------------------------------


@pytest.mark.parametrize(
    "path",
    [*yaml_files(EXAMPLE), *yaml_files(TEMPLATE)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_repository_file_validates(path: Path) -> None:
    root = EXAMPLE if EXAMPLE in path.parents else TEMPLATE
    assert errors(schema_for(path, root), load(path)) == []


@pytest.mark.parametrize("path", yaml_files(EXAMPLE), ids=lambda p: str(p.relative_to(ROOT)))
def test_example_modeline_points_at_the_schema_file(path: Path) -> None:
    first = path.read_text("utf-8").splitlines()[0]
    assert first.startswith(MODELINE)
    target = (path.parent / first.removeprefix(MODELINE)).resolve()
    assert target == SCHEMA_DIR / f"{schema_for(path, EXAMPLE)}.schema.json"


@pytest.mark.parametrize("path", yaml_files(TEMPLATE), ids=lambda p: str(p.relative_to(ROOT)))
def test_template_modeline_points_at_the_schema_id(path: Path) -> None:
    """`talon init` repositories have no schemas/ beside them: the modeline names the $id."""
    first = path.read_text("utf-8").splitlines()[0]
    assert first == MODELINE + schema(schema_for(path, TEMPLATE))["$id"]


def test_template_ignores_only_bookkeeping() -> None:
    lines = (TEMPLATE / ".gitignore").read_text("utf-8").splitlines()
    assert [ln for ln in lines if ln and not ln.startswith("#")] == ["state/.talon/"]


def _example_jobs() -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    for path in yaml_files(EXAMPLE / "schedule"):
        data = load(path)
        for name, job in data.get("jobs", {}).items():
            jobs[name] = {**data.get("defaults", {}), **job}
    return jobs


def _period_type(job: dict[str, Any]) -> str:
    period = job.get("period", "daily")
    return period if isinstance(period, str) else str(period["type"])


def _triggers(job: dict[str, Any]) -> list[Any]:
    trigger = job.get("trigger", [])
    return trigger if isinstance(trigger, list) else [trigger]


def _trigger_kind(trigger: Any) -> str:
    if isinstance(trigger, dict):
        return "after" if "after" in trigger else "windows"
    if trigger == "external":
        return "external"
    return "cron" if trigger.split()[0][0].isdigit() else "phrase"


def test_example_exercises_every_concept() -> None:
    """The example is the demo and a fixture: it must keep showing every part of the SPEC."""
    config = load(EXAMPLE / "talon.yaml")
    jobs = _example_jobs()
    periods = {_period_type(j) for j in jobs.values()}
    assert periods == {"daily", "weekly", "monthly", "quarterly", "once"}
    assert {"type": "daily", "offset": -1} in [j.get("period") for j in jobs.values()]
    kinds = {_trigger_kind(t) for j in jobs.values() for t in _triggers(j)}
    assert kinds == {"cron", "phrase", "windows", "after", "external"}
    assert any(isinstance(j.get("trigger"), list) for j in jobs.values()), "a list of triggers"
    used = {c for j in jobs.values() for c in j.get("constraints", {})}
    assert {"start_by", "after", "once_per_period", "max_running", "max_blocked"} <= used
    assert set(config["plugins"]["constraints"]) <= used, "every plugin constraint is used"
    assert {e["type"] for e in config["executors"].values()} == EXECUTOR_TYPES
    assert config["defaults"]["executor"] == "local"
    for name, executor in config["executors"].items():
        if executor["type"] in ("ssh", "sge", "slurm"):
            users = [j for j in jobs.values() if j.get("executor") == name]
            assert users, f"executor {name} is used"
            assert all(j["trigger"] == "external" for j in users), "remote jobs only run on demand"
    assert {next(iter(s)) for s in config["secrets"].values()} == {"env", "file"}
    assert {s for j in jobs.values() for s in j.get("secrets", [])} == set(config["secrets"])
    assert any("${params." in str(j.get("command")) for j in jobs.values())
    assert any(isinstance(j.get("command"), list) for j in jobs.values()), "an argv command"
    assert any("call" in j for j in jobs.values())
    assert any(j.get("env") for j in jobs.values())
    assert any(j.get("resources") for j in jobs.values())
    assert any("timezone" in j for j in jobs.values())
    assert any("start" in j for j in jobs.values())
    assert any("dst" in j for j in jobs.values())
    assert {j.get("catchup", "latest") for j in jobs.values()} == {"none", "latest", "all"}
    assert any(
        isinstance(d, dict) and d.get("period") == "previous"
        for j in jobs.values()
        for d in j.get("constraints", {}).get("after", [])
    )
    schedule_dirs = {p.parent for p in yaml_files(EXAMPLE / "schedule")}
    assert len(schedule_dirs) >= 2, "schedule files in a subdirectory too"
    assert {p.stem for p in yaml_files(EXAMPLE / "resources")} == {"hosts", "licences"}


def test_example_after_chain_of_three() -> None:
    jobs = _example_jobs()

    def upstream(name: str) -> set[str]:
        deps = jobs[name].get("constraints", {}).get("after", [])
        return {d if isinstance(d, str) else d["job"] for d in deps}

    chains = [(a, b, c) for c in jobs for b in upstream(c) & set(jobs) for a in upstream(b)]
    assert ("close-prices", "value-positions", "daily-report") in chains


SAMPLE_KEYS = {
    "daily": "2026-11-27",
    "weekly": "2026-W48",
    "monthly": "2026-11",
    "quarterly": "2026-Q3",
    "once": "once",
}


def _sample(job: dict[str, Any], name: str, text: str) -> str:
    """`text` with its placeholders filled in roughly as Talon would, for a run by hand."""
    values = {
        "period.key": SAMPLE_KEYS[_period_type(job)],
        "job.name": name,
        "run.id": f"{name}@20261127T063000Z",
        "resources.0.address": "10.0.0.12",
        **{f"params.{k}": str(v) for k, v in job.get("params", {}).items()},
    }
    return re.sub(r"\$\{([^}]+)\}", lambda m: values[m[1]], text)


@pytest.mark.parametrize("name", sorted(n for n, j in _example_jobs().items() if "command" in j))
def test_example_command_runs_by_hand(name: str, tmp_path: Path) -> None:
    """Every command is a POSIX sh script in bin/ that needs only coreutils and python3.

    Outside Talon (no TALON_RUN_ID) the scripts skip their progress and artifact reports.
    """
    job = _example_jobs()[name]
    command = job["command"]
    program = command[0] if isinstance(command, list) else command.split()[0]
    script = EXAMPLE / program
    assert program.startswith("./bin/") and script.is_file(), "commands are scripts in bin/"
    assert script.stat().st_mode & 0o111, f"{script} is executable"
    assert script.read_text("utf-8").startswith("#!/bin/sh\n"), f"{script} is POSIX sh"
    argv = (
        [_sample(job, name, a) for a in command]
        if isinstance(command, list)
        else ["/bin/sh", "-c", _sample(job, name, command)]
    )
    env = {"PATH": "/usr/bin:/bin", "TALON_REPO": str(tmp_path), **job.get("env", {})}
    env = {k: _sample(job, name, v) for k, v in env.items()}
    done = subprocess.run(
        argv, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=10, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(program.removeprefix("./bin/") + ": ")


def _example_lib() -> Any:
    path = EXAMPLE / "lib" / "talon_example.py"
    spec = importlib.util.spec_from_file_location("talon_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class _Context:
    """What the inprocess executor hands a callable, as far as the example uses it."""

    params: dict[str, Any]
    period: dict[str, str]
    reports: list[tuple[str, Any]] = field(default_factory=list)

    def progress(self, percent: float) -> None:
        self.reports.append(("progress", percent))

    def artifact(self, url: str, name: str | None = None) -> None:
        self.reports.append(("artifact", (url, name)))


def test_example_inprocess_callable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = _example_lib()
    monkeypatch.setattr(lib, "OUT", tmp_path)
    ctx = _Context({"source": "test"}, {"type": "daily", "key": "2026-11-27"})
    lib.refresh(ctx)
    out = tmp_path / "instruments" / "2026-11-27.csv"
    assert out.read_text("utf-8").splitlines()[:2] == ["symbol,source", "VOD.L,test"]
    assert ctx.reports[-2:] == [("progress", 100), ("artifact", (out.as_uri(), "instruments"))]


@pytest.mark.parametrize(
    ("day", "verdict"),
    [("2026-11-27", "pass"), ("2026-11-28", "cancel"), ("2026-12-25", "cancel")],
)
def test_example_business_day_plugin(day: str, verdict: str) -> None:
    """The plugin constraint, called as Talon calls it: (run, options, view, now)."""
    run = SimpleNamespace(period={"type": "daily", "key": day, "start": f"{day}T00:00:00+00:00"})
    now = datetime.fromisoformat(f"{day}T16:35:00+00:00")
    got, reason = _example_lib().business_day(run, True, None, now)
    assert (got, reason.startswith(day)) == (verdict, True)


# -- mistakes, each rejected where it is ---------------------------------------------------------

JOB: dict[str, Any] = {"command": "true", "trigger": "0 6 * * *"}

RUN: dict[str, Any] = {
    "id": "extract@20261127T063000Z",
    "job": "extract",
    "state": "succeeded",
    "reason": None,
    "period": {
        "type": "daily",
        "key": "2026-11-27",
        "start": "2026-11-27T00:00:00+00:00",
        "end": "2026-11-28T00:00:00+00:00",
    },
    "trigger": {"type": "cron", "at": "2026-11-27T06:30:00+00:00"},
    "attempt": 1,
    "created": "2026-11-27T06:30:00+00:00",
    "started": "2026-11-27T06:30:01+00:00",
    "finished": "2026-11-27T06:31:00+00:00",
    "exit_code": 0,
    "executor": {"name": "local", "type": "local", "handle": {"pid": 4242}},
    "dispatch": {"at": "2026-11-27T06:30:01+00:00", "by": "vm:1234"},
    "resources": [{"path": "hosts/compute/node1", "slots": 1, "attrs": {"type": "big"}}],
    "params": {"region": "eu"},
    "progress": {
        "kind": "items",
        "items": {"a": "succeeded", "b": "running"},
        "done": 1,
        "total": 2,
    },
    "artifacts": [{"url": "file:///tmp/out.csv", "name": "out", "at": "2026-11-27T06:31:00+00:00"}],
    "checks": [
        {
            "constraint": "after",
            "verdict": "pass",
            "reason": "load-prices succeeded",
            "at": "2026-11-27T06:30:00+00:00",
        }
    ],
    "revision": {"commit": "0123abc", "dirty": False},
    "job_hash": "8f2ee9af8124f528",
    "history": [{"at": "2026-11-27T06:30:00+00:00", "state": "ready", "reason": None}],
    "future_field": "kept",
}


def job(**changes: Any) -> dict[str, Any]:
    """A schedule file with one job "x" (at jobs/x), changed."""
    return {"jobs": {"x": {**JOB, **changes}}}


def constraints(**given: Any) -> dict[str, Any]:
    return job(constraints=given)


def executor(**given: Any) -> dict[str, Any]:
    """talon.yaml with one executor "a" (at executors/a)."""
    return {"executors": {"a": given}}


def resource(**request: Any) -> dict[str, Any]:
    return job(resources=[request])


def plugin(name: str, target: str) -> dict[str, Any]:
    return {"plugins": {"constraints": {name: target}}}


def run(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(RUN)
    doc.update(changes)
    return doc


def without(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != key}


X, C, E, R = "jobs/x", "jobs/x/constraints", "executors/a", "jobs/x/resources/0"
PCT, A = {"kind": "percent", "percent": 101}, "jobs/x/constraints/after/0"
P, W = "plugins/constraints", "jobs/x/trigger/windows/0"
AT = RUN["created"]

VALID: list[tuple[str, str, Any]] = [
    ("minimal job", "schedule", job()),
    ("argv command", "schedule", job(command=["./bin/x", "--day", "${period.key}"])),
    ("call instead", "schedule", {"jobs": {"x": {"call": "pkg.mod:fn", "executor": "py"}}}),
    ("empty file", "schedule", {}),
    ("offset period", "schedule", job(period={"type": "daily", "offset": -1})),
    ("trigger list", "schedule", job(trigger=["0 6 * * *", {"after": "y"}, "external"])),
    (
        "window",
        "schedule",
        job(trigger={"windows": [{"every": "15m", "from": "7am", "to": "10:00"}]}),
    ),
    ("window days", "schedule", job(trigger={"windows": [{"every": 60}], "days": [1, "fri"]})),
    ("durations", "schedule", job(poll=30, timeout="1h30m", expected_duration="1.5h")),
    ("start_by clock", "schedule", constraints(start_by="09:00")),
    ("start_by duration", "schedule", constraints(start_by="3h")),
    ("plugin constraint", "schedule", constraints(business_day={"calendar": "uk"})),
    ("after previous", "schedule", constraints(after=["y", {"job": "z", "period": "previous"}])),
    ("start date", "schedule", job(start="2026-11-02")),
    ("empty config", "talon", {}),
    ("ssh executor", "talon", executor(type="ssh", host="h", port=2222, connect_timeout="5s")),
    ("repo defaults", "talon", {"defaults": {"executor": "local", "poll": "1m", "catchup": "all"}}),
    ("secret file", "talon", {"secrets": {"db": {"file": "/etc/talon/db"}}}),
    ("nested resources", "resources", {"a": {"b": {"c": {"capacity": 2, "gpu": True}}}}),
    ("empty leaf", "resources", {"node1": {}}),
    ("full run", "run", RUN),
    ("open run", "run", run(state="blocked", started=None, finished=None, executor=None)),
    ("percent", "run", run(progress={"kind": "percent", "percent": 40})),
    ("duration", "run", run(progress={"kind": "duration", "elapsed_s": 12.5, "expected_s": 60})),
]


@pytest.mark.parametrize(("case", "name", "document"), VALID, ids=[c[0] for c in VALID])
def test_accepts(case: str, name: str, document: Any) -> None:
    assert errors(name, document) == []


# (case, schema, document, where the error is)
REJECTED: list[tuple[str, str, Any, str]] = [
    ("unknown top-level key", "schedule", {"job": {}}, ""),
    ("unknown job key", "schedule", job(comand="true"), X),
    ("name with a slash", "schedule", {"jobs": {"../x": JOB}}, "jobs"),
    ("name starting with a dot", "schedule", {"jobs": {".x": JOB}}, "jobs"),
    ("name too long", "schedule", {"jobs": {"x" * 129: JOB}}, "jobs"),
    ("job not a mapping", "schedule", {"jobs": {"x": "true"}}, X),
    ("enabled is not a key", "schedule", job(enabled=False), X),
    ("defaults typo", "schedule", {"defaults": {"executr": "local"}, "jobs": {}}, "defaults"),
    ("bad period type", "schedule", job(period="hourly"), f"{X}/period"),
    ("offset text", "schedule", job(period={"type": "daily", "offset": "1"}), f"{X}/period/offset"),
    ("retries as text", "schedule", job(retries="two"), f"{X}/retries"),
    ("negative retries", "schedule", job(retries=-1), f"{X}/retries"),
    ("duration in words", "schedule", job(timeout="5 minutes"), f"{X}/timeout"),
    ("duration unit", "schedule", job(poll="5w"), f"{X}/poll"),
    ("negative duration", "schedule", job(poll=-5), f"{X}/poll"),
    ("bad catchup", "schedule", job(catchup="sometimes"), f"{X}/catchup"),
    ("empty command", "schedule", job(command=""), f"{X}/command"),
    ("empty argv", "schedule", job(command=[]), f"{X}/command"),
    ("argv with a number", "schedule", job(command=["sleep", 5]), f"{X}/command/1"),
    ("call without colon", "schedule", job(call="pkg.mod.fn"), f"{X}/call"),
    ("trigger number", "schedule", job(trigger=5), f"{X}/trigger"),
    ("empty trigger list", "schedule", job(trigger=[]), f"{X}/trigger"),
    ("after trigger typo", "schedule", job(trigger={"aftr": "y"}), f"{X}/trigger"),
    ("after with days", "schedule", job(trigger={"after": "y", "days": "mon"}), f"{X}/trigger"),
    ("after bad name", "schedule", job(trigger={"after": "../y"}), f"{X}/trigger/after"),
    ("trigger mapping", "schedule", job(trigger={"days": "mon"}), f"{X}/trigger"),
    ("trigger in list", "schedule", job(trigger=["0 6 * * *", 6]), f"{X}/trigger/1"),
    ("window no every", "schedule", job(trigger={"windows": [{}]}), W),
    ("window 25:00", "schedule", job(trigger={"windows": [{"every": 60, "to": "25:"}]}), f"{W}/to"),
    ("bad dst gap", "schedule", job(dst={"gap": "ignore"}), f"{X}/dst/gap"),
    ("dst typo", "schedule", job(dst={"folds": "first"}), f"{X}/dst"),
    ("start not a date", "schedule", job(start="tomorrow"), f"{X}/start"),
    ("start_by 25:00", "schedule", constraints(start_by="25:00"), f"{C}/start_by"),
    ("after not a list", "schedule", constraints(after="y"), f"{C}/after"),
    ("after period", "schedule", constraints(after=[{"job": "y", "period": 1}]), f"{A}/period"),
    ("once_per_period yes", "schedule", constraints(once_per_period="yes"), f"{C}/once_per_period"),
    ("max_running 0", "schedule", constraints(max_running=0), f"{C}/max_running"),
    ("max_blocked text", "schedule", constraints(max_blocked="1"), f"{C}/max_blocked"),
    ("constraint name", "schedule", constraints(**{"business-day": True}), C),
    ("resources mapping", "schedule", job(resources={"select": "a/*"}), f"{X}/resources"),
    ("resource key typo", "schedule", job(resources=[{"selector": "a/*"}]), R),
    ("resource escapes", "schedule", resource(select="../etc"), f"{R}/select"),
    ("resource count 0", "schedule", resource(select="a", count=0), f"{R}/count"),
    ("where list", "schedule", resource(select="a", where={"t": [1]}), f"{R}/where/t"),
    ("param list", "schedule", job(params={"region": ["eu"]}), f"{X}/params/region"),
    ("param bad name", "schedule", job(params={"my-region": "eu"}), f"{X}/params"),
    ("env number", "schedule", job(env={"THREADS": 4}), f"{X}/env/THREADS"),
    ("env bad name", "schedule", job(env={"MY-VAR": "x"}), f"{X}/env"),
    ("secrets not a list", "schedule", job(secrets="db"), f"{X}/secrets"),
    ("secret twice", "schedule", job(secrets=["db", "db"]), f"{X}/secrets"),
    ("unknown config key", "talon", {"executor": {}}, ""),
    ("timezone not a name", "talon", {"timezone": "London time"}, "timezone"),
    ("state type", "talon", {"state": {"type": "sqlite"}}, "state/type"),
    ("lock mode", "talon", {"state": {"lock_mode": "nfs"}}, "state/lock_mode"),
    ("defaults job key typo", "talon", {"defaults": {"pol": "1m"}}, "defaults"),
    ("executor without type", "talon", executor(max_parallel=2), E),
    ("executor type", "talon", executor(type="kubernetes"), f"{E}/type"),
    ("key of another type", "talon", executor(type="local", queue="q"), E),
    ("ssh key on slurm", "talon", executor(type="slurm", host="h"), E),
    ("executor typo", "talon", executor(type="ssh", hots="h"), E),
    ("port range", "talon", executor(type="ssh", port=70000), f"{E}/port"),
    ("max_parallel 0", "talon", executor(type="local", max_parallel=0), f"{E}/max_parallel"),
    ("qsub_args number", "talon", executor(type="sge", qsub_args=[1]), f"{E}/qsub_args/0"),
    ("executor name", "talon", {"executors": {"../a": {"type": "local"}}}, "executors"),
    ("plugin kind", "talon", {"plugins": {"executors": {}}}, "plugins"),
    ("plugin target", "talon", plugin("bd", "m.f"), f"{P}/bd"),
    ("plugin is built-in", "talon", plugin("after", "m:f"), P),
    ("secret two sources", "talon", {"secrets": {"db": {"env": "A", "file": "/x"}}}, "secrets/db"),
    ("secret no source", "talon", {"secrets": {"db": {}}}, "secrets/db"),
    ("secret source typo", "talon", {"secrets": {"db": {"environ": "A"}}}, "secrets/db"),
    ("capacity 0", "resources", {"n1": {"capacity": 0}}, "n1/capacity"),
    ("capacity text", "resources", {"n1": {"capacity": "four"}}, "n1/capacity"),
    ("node name", "resources", {"../etc": {"capacity": 1}}, ""),
    ("attribute list", "resources", {"n1": {"tags": ["a", "b"]}}, "n1/tags"),
    ("attribute null", "resources", {"n1": {"type": None}}, "n1/type"),
    ("group with an attribute", "resources", {"g": {"type": "big", "n1": {}}}, "g/type"),
    ("scalar at the top", "resources", {"capacity": 3}, "capacity"),
    ("run state", "run", run(state="done"), "state"),
    ("run attempt 0", "run", run(attempt=0), "attempt"),
    ("run without id", "run", without(RUN, "id"), ""),
    ("run naive time", "run", run(created="2026-11-27T06:30:00"), "created"),
    ("run period key", "run", run(period={**RUN["period"], "key": "2026-13-45x"}), "period/key"),
    ("run trigger type", "run", run(trigger={"type": "manual", "at": AT}), "trigger/type"),
    ("run progress kind", "run", run(progress={"kind": "ratio"}), "progress/kind"),
    ("run percent 101", "run", run(progress=PCT), "progress/percent"),
    ("run verdict", "run", run(checks=[{**RUN["checks"][0], "verdict": "ok"}]), "checks/0/verdict"),
    ("run artifact url", "run", run(artifacts=[{"name": "x", "at": AT}]), "artifacts/0"),
    ("run history state", "run", run(history=[{"at": AT, "state": "paused"}]), "history/0/state"),
    ("run revision", "run", run(revision={"commit": "HEAD", "dirty": False}), "revision/commit"),
    ("run exit code text", "run", run(exit_code="0"), "exit_code"),
    ("run executor type", "run", run(executor={"name": "k", "type": "k8s"}), "executor/type"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "name", "document", "where"), REJECTED, ids=[c[0] for c in REJECTED]
)
def test_rejects(case: str, name: str, document: Any, where: str) -> None:
    """Each mistake is reported where it is, and only there."""
    found = errors(name, document)
    assert found, f"{case}: accepted"
    assert {path for path, _ in found} == {where}, f"{case}: errors at {found}"


def test_duration_message_says_what_is_expected() -> None:
    """`talon validate` quotes a pattern's description: it must say what a duration looks like."""
    [(_, message)] = errors("schedule", job(timeout="5 minutes"))
    described = _resolve(schema("schedule"), schema("schedule")["$defs"]["duration"])
    assert "5 minutes" in message
    assert '"30s"' in described["description"]
    assert "patternErrorMessage" in described
