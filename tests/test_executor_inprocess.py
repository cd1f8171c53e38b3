"""The inprocess executor: a callable from a module, run detached with a run context."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from talon.executors.base import Finished, Handle, Running, Status, Submission, SubmitRefused
from talon.executors.inprocess import InprocessExecutor, RunContext, context_from_env, main
from talon.markers import parse_markers

JOBS = """
import json, os, sys, time

def report(ctx):
    print("hello from", ctx.job, ctx.run_id)
    print(json.dumps({"period": dict(ctx.period), "params": dict(ctx.params)}, sort_keys=True))
    ctx.progress(40)
    ctx.item("fileA", "succeeded", total=3)
    ctx.artifact("s3://bucket/out.csv", name="out")
    ctx.artifact("https://example.com/plain")
    print("cwd", os.getcwd(), file=ctx.log)

def boom(ctx):
    print("about to fail")
    raise RuntimeError("the data is bad")

def leave(ctx):
    raise SystemExit(4)

def slow(ctx):
    time.sleep(60)

def three(ctx):
    return 3

def truthy(ctx):
    return True

class Jobs:
    @staticmethod
    def nested(ctx):
        print("nested", ctx.env["EXTRA"])
"""

MakeSub = Callable[..., Submission]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Talon repository whose lib/ holds the job module."""
    for var in ("TALON_RUN_FILE", "TALON_RUN_ID", "TALON_REPO", "TALON_PERIOD", "TALON_PARAMS"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "repo"
    (root / "lib" / "talonjobs_t").mkdir(parents=True)
    (root / "lib" / "talonjobs_t" / "__init__.py").write_text("")
    (root / "lib" / "talonjobs_t" / "jobs.py").write_text(JOBS)
    return root


@pytest.fixture
def make_sub(repo: Path) -> MakeSub:
    def make(call: str, **kw: Any) -> Submission:
        env = {
            "TALON_REPO": str(repo),
            "TALON_RUN_ID": "r1",
            "TALON_JOB": "load",
            "TALON_PERIOD": "2026-11-27",
            "TALON_PERIOD_START": "2026-11-27T00:00:00+00:00",
            "TALON_PERIOD_END": "2026-11-28T00:00:00+00:00",
            "TALON_PARAMS": json.dumps({"region": "eu"}),
        }
        return Submission(
            run_id="r1",
            job="load",
            command=call,
            env=env | kw.pop("env", {}),
            log_path=repo / "state" / "2026-11-27" / "load" / "r1.log",
            status_dir=repo / "state" / ".talon" / "proc",
            workdir=repo,
            **kw,
        )

    return make


def settle(ex: InprocessExecutor, handle: Handle, sub: Submission, timeout: float = 30) -> Status:
    deadline = time.monotonic() + timeout
    status = ex.poll(handle, sub)
    while isinstance(status, Running) and time.monotonic() < deadline:
        time.sleep(0.02)
        status = ex.poll(handle, sub)
    return status


def test_callable_reports_progress_and_artifacts_as_markers(make_sub: MakeSub, repo: Path) -> None:
    ex = InprocessExecutor({})
    sub = make_sub("talonjobs_t.jobs:report")
    assert settle(ex, ex.submit(sub), sub) == Finished(0)
    lines = sub.log_path.read_text().splitlines()
    assert lines[0] == "hello from load r1"
    assert json.loads(lines[1]) == {
        "period": {
            "type": "daily",
            "key": "2026-11-27",
            "start": "2026-11-27T00:00:00+00:00",
            "end": "2026-11-28T00:00:00+00:00",
        },
        "params": {"region": "eu"},
    }
    assert list(parse_markers(lines)) == [
        ("progress", {"kind": "percent", "percent": 40.0}),
        ("progress", {"kind": "items", "items": {"fileA": "succeeded"}, "total": 3}),
        ("artifact", {"url": "s3://bucket/out.csv", "name": "out"}),
        ("artifact", {"url": "https://example.com/plain"}),
    ]
    assert lines[-1] == f"cwd {repo}"


def test_exception_fails_with_the_traceback_in_the_log(make_sub: MakeSub) -> None:
    ex = InprocessExecutor({})
    sub = make_sub("talonjobs_t.jobs:boom")
    assert settle(ex, ex.submit(sub), sub) == Finished(1)
    log = sub.log_path.read_text()
    assert log.index("about to fail") < log.index("Traceback")
    assert "RuntimeError: the data is bad" in log


@pytest.mark.parametrize(
    ("call", "code", "in_log"),
    [
        ("talonjobs_t.jobs:leave", 4, ""),
        ("talonjobs_t.jobs:three", 3, ""),
        ("talonjobs_t.jobs:truthy", 0, ""),
        ("talonjobs_t.jobs:Jobs.nested", 0, "nested yes"),
        ("talonjobs_t.nosuchmodule:fn", 127, "cannot load talonjobs_t.nosuchmodule:fn"),
        ("talonjobs_t.jobs:nosuchfn", 127, "AttributeError"),
    ],
    ids=[
        "system-exit",
        "int-returned",
        "bool-returned",
        "dotted-attribute",
        "missing-module",
        "missing-function",
    ],
)
def test_exit_statuses(make_sub: MakeSub, call: str, code: int, in_log: str) -> None:
    ex = InprocessExecutor({})
    sub = make_sub(call, env={"EXTRA": "yes"})
    assert settle(ex, ex.submit(sub), sub) == Finished(code)
    assert in_log in sub.log_path.read_text()


def test_sys_path_from_config(make_sub: MakeSub, repo: Path) -> None:
    (repo / "lib").rename(repo / "jobs_src")
    ex = InprocessExecutor({"sys_path": ["jobs_src"]})
    sub = make_sub("talonjobs_t.jobs:Jobs.nested", env={"EXTRA": "found"})
    assert settle(ex, ex.submit(sub), sub) == Finished(0)
    assert "nested found" in sub.log_path.read_text()


def test_cancel_and_timeout_work_as_for_local(make_sub: MakeSub) -> None:
    ex = InprocessExecutor({"kill_grace": 0.5})
    sub = make_sub("talonjobs_t.jobs:slow")
    handle = ex.submit(sub)
    time.sleep(0.3)
    ex.cancel(handle, sub)
    assert settle(ex, handle, sub) == Finished(143, "cancelled")
    timed = make_sub("talonjobs_t.jobs:slow", timeout_s=1)
    assert settle(ex, ex.submit(timed), timed) == Finished(124, "timed out after 1s")


def test_adopt_delegates(make_sub: MakeSub) -> None:
    ex = InprocessExecutor({})
    sub = make_sub("talonjobs_t.jobs:report")
    assert ex.adopt(sub) is None
    handle = ex.submit(sub)
    settle(ex, handle, sub)
    adopted = ex.adopt(sub)
    assert adopted is not None
    assert ex.poll(adopted, sub) == Finished(0)


@pytest.mark.parametrize("call", ["not a call", "module_only", ":fn", ("argv",)])
def test_submit_refuses_a_malformed_call(make_sub: MakeSub, call: str | tuple[str, ...]) -> None:
    with pytest.raises(SubmitRefused) as info:
        InprocessExecutor({}).submit(make_sub(call))
    assert not info.value.retryable


def test_bad_sys_path_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="sys_path"):
        InprocessExecutor({"sys_path": "lib"})


# --- the context itself, in this process ---------------------------------------------------


@pytest.mark.parametrize(
    ("key", "period_type"),
    [
        ("2026-11-27", "daily"),
        ("2026-W48", "weekly"),
        ("2026-11", "monthly"),
        ("2026-Q4", "quarterly"),
        ("once", "once"),
    ],
)
def test_period_type_from_the_key(key: str, period_type: str) -> None:
    ctx = context_from_env({"TALON_PERIOD": key}, io.StringIO())
    assert ctx.period["type"] == period_type
    assert ctx.period["key"] == key


def test_context_is_read_only_and_validates_reports() -> None:
    log = io.StringIO()
    ctx = context_from_env(
        {"TALON_PARAMS": "not json", "TALON_RUN_FILE": "/nonexistent/run.json"}, log
    )
    assert ctx.params == {}
    assert ctx.run_file is None  # unreachable: reports go to the log
    with pytest.raises(TypeError):
        ctx.params["x"] = 1  # type: ignore[index]
    with pytest.raises(ValueError, match="between 0 and 100"):
        ctx.progress(140)
    with pytest.raises(ValueError, match="item state"):
        ctx.item("a", "all done")
    assert log.getvalue() == ""


def test_context_records_into_the_run_file_when_it_can(tmp_path: Path) -> None:
    run_file = tmp_path / "run.json"
    run_file.write_text("{}")
    log = io.StringIO()
    ctx = RunContext("r1", "job", {}, {}, {}, log, run_file=run_file)
    ctx.progress(10)  # not a real run file: the report falls back to the log, the job goes on
    assert "could not record progress" in log.getvalue()
    assert list(parse_markers(log.getvalue().splitlines())) == [
        ("progress", {"kind": "percent", "percent": 10.0})
    ]


def test_main_usage() -> None:
    assert main([]) == 2
    assert main(["--path"]) == 2


def test_reports_go_into_the_run_file_when_it_is_reachable(make_sub: MakeSub, repo: Path) -> None:
    from talon.runs import Run, State
    from talon.store import FileStore

    store = FileStore(repo / "state")
    run = Run(
        id="r1",
        job="load",
        state=State.RUNNING,
        period={
            "type": "daily",
            "key": "2026-11-27",
            "start": "2026-11-27T00:00:00+00:00",
            "end": "2026-11-28T00:00:00+00:00",
        },
        trigger={"type": "external", "at": "2026-11-27T06:00:00+00:00"},
        created="2026-11-27T06:00:00+00:00",
    )
    store.ensure()
    assert store.create(run)
    ex = InprocessExecutor({})
    sub = make_sub("talonjobs_t.jobs:report", env={"TALON_RUN_FILE": str(store.path_of(run))})
    assert settle(ex, ex.submit(sub), sub) == Finished(0)
    recorded = store.read(store.path_of(run))
    assert recorded.progress == {
        "kind": "items",
        "items": {"fileA": "succeeded"},
        "done": 1,
        "total": 3,
    }
    assert [(a["url"], a.get("name")) for a in recorded.artifacts] == [
        ("s3://bucket/out.csv", "out"),
        ("https://example.com/plain", None),
    ]
    assert not list(parse_markers(sub.log_path.read_text().splitlines()))


def test_a_printed_context_shows_no_environment() -> None:
    """The job's environment holds its secrets: `print(ctx)` put them in the run's log."""
    ctx = RunContext("r1", "job", {}, {"p": 1}, {"DB": "s3cr3t-value"}, io.StringIO())
    assert "s3cr3t-value" not in repr(ctx) and "'p': 1" in repr(ctx)
    assert ctx.env["DB"] == "s3cr3t-value"
