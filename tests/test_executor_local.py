"""The local executor with real processes: detached runs, exit statuses, cancel, timeout, loss."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from talon.executors import runner
from talon.executors.base import Finished, Handle, Lost, Running, Status, Submission, SubmitRefused
from talon.executors.local import LocalExecutor, status_file
from talon.executors.spawning import Spawner
from talon.markers import format_marker, parse_markers

MakeSub = Callable[..., Submission]
GRACE = 0.5


@pytest.fixture(params=["own", "shared", "spare", "soon"])
def mode(request: pytest.FixtureRequest) -> str:
    """Every test here runs four ways: a status file per run; one shared by the runs of a
    process (as passes in flock mode give them); that, with each run handed to a spare
    wrapper started ahead of it (as `reconcile --wait` does) where it is eligible; and that,
    started by the spawner thread (`submit_soon`, as a pass starting many runs does)."""
    return str(request.param)


@pytest.fixture
def make_sub(tmp_path: Path, mode: str) -> MakeSub:
    work = tmp_path / "work"
    work.mkdir()
    counter = iter(range(1000))
    status_dir = tmp_path / "state" / ".talon" / "proc"
    shared = status_dir / "p1-1.status" if mode in ("shared", "spare", "soon") else None

    def make(command: str | tuple[str, ...], **kw: Any) -> Submission:
        rid = kw.pop("run_id", f"r{next(counter)}")
        return Submission(
            run_id=rid,
            job="job",
            command=command,
            env=kw.pop("env", {}),
            log_path=tmp_path / "state" / "2026-11-27" / "job" / f"{rid}.log",
            status_dir=status_dir,
            workdir=kw.pop("workdir", work),
            shared_status=kw.pop("shared_status", shared),
            **kw,
        )

    return make


@pytest.fixture
def ex(mode: str) -> Iterator[LocalExecutor]:
    executor = LocalExecutor({"kill_grace": GRACE})
    if mode == "spare":
        submit = executor.submit

        def prepared(sub: Submission) -> Handle:
            executor.prepare_spare()
            return submit(sub)

        executor.submit = prepared  # type: ignore[method-assign]
    if mode == "soon":
        assert Spawner.available() is not None  # else this mode would test the usual way

        def soon(sub: Submission) -> Handle:
            return executor.submit_soon(sub).result()

        executor.submit = soon  # type: ignore[method-assign]
    yield executor
    executor.close_spare()


def settle(ex: LocalExecutor, handle: Handle, sub: Submission, timeout: float = 20) -> Status:
    deadline = time.monotonic() + timeout
    status = ex.poll(handle, sub)
    while isinstance(status, Running) and time.monotonic() < deadline:
        time.sleep(0.02)
        status = ex.poll(handle, sub)
    return status


def wait_for(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.01)
    raise AssertionError(f"{path} never appeared")


def gone(pid: int) -> bool:
    proc = runner.read_proc(pid)
    return proc is None or proc.dead


def log_of(sub: Submission) -> str:
    return sub.log_path.read_text()


@pytest.mark.parametrize(
    ("command", "code", "output"),
    [
        ("true", 0, ""),
        ("exit 3", 3, ""),
        (("false",), 1, ""),
        ("for i in 1 2 3; do printf %s, $i; done | tr , -; echo", 0, "1-2-3-\n"),
        ("echo out; echo err >&2", 0, "out\nerr\n"),
        (("/nonexistent/program",), 127, "not found"),
    ],
    ids=["success", "exit-3", "argv-false", "shell-features", "stdout-and-stderr", "exec-failure"],
)
def test_exit_status_and_output(
    ex: LocalExecutor, make_sub: MakeSub, command: str | tuple[str, ...], code: int, output: str
) -> None:
    sub = make_sub(command)
    status = settle(ex, ex.submit(sub), sub)
    assert isinstance(status, Finished)
    assert status.exit_code == code
    assert output in log_of(sub)


def test_argv_arrives_literally_without_a_shell(
    ex: LocalExecutor, make_sub: MakeSub, tmp_path: Path
) -> None:
    hostile = [
        "x; touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "a 'quoted' \"arg\"",
        "*",
        "two  spaces",
        "",
    ]
    sub = make_sub(("printf", "[%s]\\n", *hostile))
    status = settle(ex, ex.submit(sub), sub)
    assert status == Finished(0)
    assert log_of(sub).splitlines() == [f"[{arg}]" for arg in hostile]
    assert not list(tmp_path.rglob("pwned"))


def test_environment_workdir_and_inherited_variables(
    ex: LocalExecutor, make_sub: MakeSub, tmp_path: Path
) -> None:
    sub = make_sub(
        'echo "$FOO|$TALON_RUN_ID|$(pwd)"; command -v sh >/dev/null',
        env={"FOO": "a b;c", "TALON_RUN_ID": "r9"},
    )
    assert settle(ex, ex.submit(sub), sub) == Finished(0)  # PATH came from Talon's environment
    assert log_of(sub) == f"a b;c|r9|{tmp_path / 'work'}\n"


def test_log_is_appended_and_markers_survive(ex: LocalExecutor, make_sub: MakeSub) -> None:
    marker = format_marker("progress", {"kind": "percent", "percent": 40})
    sub = make_sub(("echo", marker))
    sub.log_path.parent.mkdir(parents=True)
    sub.log_path.write_text("earlier attempt\n")
    assert settle(ex, ex.submit(sub), sub) == Finished(0)
    assert log_of(sub).splitlines()[0] == "earlier attempt"
    assert list(parse_markers(log_of(sub).splitlines())) == [
        ("progress", {"kind": "percent", "percent": 40})
    ]


def test_signals_and_stdin_are_reset_for_the_command(ex: LocalExecutor, make_sub: MakeSub) -> None:
    sub = make_sub("grep -E '^Sig(Blk|Ign)' /proc/self/status; cat; echo eof")
    assert settle(ex, ex.submit(sub), sub) == Finished(0)
    lines = dict(line.split(":\t") for line in log_of(sub).splitlines()[:2])
    assert int(lines["SigBlk"], 16) == 0
    ignored = int(lines["SigIgn"], 16)
    for sig in (
        signal.SIGPIPE,
        signal.SIGXFSZ,
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
    ):
        assert not ignored & (1 << (sig - 1)), sig.name
    assert log_of(sub).endswith("eof\n")  # stdin is /dev/null: cat did not wait


def test_handle_is_json_and_names_the_wrapper(ex: LocalExecutor, make_sub: MakeSub) -> None:
    sub = make_sub("true", timeout_s=60)
    handle = ex.submit(sub)
    assert json.loads(json.dumps(handle)) == handle
    assert set(handle) == {"pid", "start", "boot", "rc_file", "submitted", "timeout_s", "key"}
    assert handle["rc_file"] == str(status_file(sub))
    assert handle["timeout_s"] == 60
    assert settle(ex, handle, sub) == Finished(0)
    assert sorted(p.name for p in sub.status_dir.iterdir()) == [
        status_file(sub).name
    ]  # one file per run


def test_run_survives_the_process_that_started_it(make_sub: MakeSub, tmp_path: Path) -> None:
    sub = make_sub("sleep 1; echo finished")
    script = f"""
import json, sys
from pathlib import Path
from talon.executors.base import Submission
from talon.executors.local import LocalExecutor
sub = Submission(run_id={sub.run_id!r}, job="job", command={sub.command!r}, env={{}},
                 log_path=Path({str(sub.log_path)!r}), status_dir=Path({str(sub.status_dir)!r}),
                 workdir=Path({str(sub.workdir)!r}))
print(json.dumps(LocalExecutor({{}}).submit(sub)))
"""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert time.monotonic() - started < 5  # the submitting process did not wait for the run
    handle = json.loads(done.stdout)
    ex = LocalExecutor({})
    assert isinstance(ex.poll(handle, sub), Running)
    wrapper = runner.read_proc(handle["pid"])
    assert wrapper is not None
    assert wrapper.session == wrapper.pid == wrapper.pgrp  # its own session, no terminal
    assert settle(ex, handle, sub) == Finished(0)
    assert log_of(sub) == "finished\n"


def test_cancel_stops_the_whole_process_group(
    ex: LocalExecutor, make_sub: MakeSub, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    sub = make_sub(f"sleep 60 & echo $! > {pid_file}; wait")
    handle = ex.submit(sub)
    child = int(wait_for(pid_file))
    started = time.monotonic()
    ex.cancel(handle, sub)
    assert time.monotonic() - started < 2  # does not wait for the run to end
    status = settle(ex, handle, sub)
    assert status == Finished(143, "cancelled")
    assert gone(child)
    ex.cancel(handle, sub)  # idempotent, also once finished


def test_cancel_kills_a_run_that_ignores_sigterm(
    ex: LocalExecutor, make_sub: MakeSub, tmp_path: Path
) -> None:
    pid_file = tmp_path / "job.pid"
    sub = make_sub(f"trap '' TERM; echo $$ > {pid_file}; sleep 60; sleep 60")
    handle = ex.submit(sub)
    job = int(wait_for(pid_file))
    ex.cancel(handle, sub)
    ex.cancel(handle, sub)
    time.sleep(GRACE / 2)
    assert isinstance(ex.poll(handle, sub), Running)  # still in its grace
    deadline = time.monotonic() + 10
    while not gone(job) and time.monotonic() < deadline:  # no poll: the detached helper kills it
        time.sleep(0.05)
    assert gone(job)
    status = settle(ex, handle, sub)
    assert status == Finished(137, f"cancelled (killed after {GRACE:g}s)")
    assert gone(job)


IGNORES_TERM = (
    "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    "open(sys.argv[1], 'w').write(f'{os.getpid()}\\n'); time.sleep(60)"
)


@pytest.mark.parametrize("inline", [True, False], ids=["subshell", "sh -c"])
def test_cancel_kills_a_command_that_ignores_sigterm_under_a_shell_that_does_not(
    ex: LocalExecutor, make_sub: MakeSub, tmp_path: Path, inline: bool
) -> None:
    """The shell between the wrapper and the command dies of the SIGTERM, the wrapper records
    143 and leaves; the command, which ignores SIGTERM, must still be killed after the grace,
    not left running with no owner."""
    pid_file = tmp_path / "py.pid"
    own = "" if inline else "; : $$"  # `$$` gives the command a `sh -c` of its own
    sub = make_sub(f'{sys.executable} -c "{IGNORES_TERM}" {pid_file}; echo after{own}')
    handle = ex.submit(sub)
    job = int(wait_for(pid_file))
    ex.cancel(handle, sub)
    # The wrapper ends at once, and is reaped here as `talon cancel` exiting would have it
    # reaped by init: nothing is left to say the run was this session's but what was seen.
    assert settle(ex, handle, sub) == Finished(143, "cancelled")
    assert runner.read_proc(handle["pid"]) is None
    deadline = time.monotonic() + GRACE + 10
    while not gone(job) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(job), "the command outlived the cancel"
    assert "after" not in log_of(sub)


def test_cancel_of_a_finished_or_lost_run_does_nothing(
    ex: LocalExecutor, make_sub: MakeSub
) -> None:
    sub = make_sub("true")
    handle = ex.submit(sub)
    assert settle(ex, handle, sub) == Finished(0)
    ex.cancel(handle, sub)
    ex.cancel(
        {"pid": 1, "start": 0, "rc_file": "/nonexistent/x.rc"}, sub
    )  # not ours: never signalled
    ex.cancel({"garbage": True}, sub)
    assert ex.poll(handle, sub) == Finished(0)


@pytest.mark.parametrize(
    ("command", "code", "detail"),
    [
        ("sleep 30 & wait", 124, "timed out after 0.5s"),
        ("trap '' TERM; sleep 30", 137, "timed out after 0.5s (killed: it ignored SIGTERM)"),
    ],
    ids=["stops-on-sigterm", "needs-sigkill"],
)
def test_timeout_is_enforced_by_the_wrapper(
    ex: LocalExecutor, make_sub: MakeSub, command: str, code: int, detail: str
) -> None:
    sub = make_sub(command, timeout_s=0.5)
    started = time.monotonic()
    status = settle(ex, ex.submit(sub), sub)
    assert status == Finished(code, detail)
    assert time.monotonic() - started < 10


def test_quick_exit_124_is_not_a_timeout(ex: LocalExecutor, make_sub: MakeSub) -> None:
    sub = make_sub("exit 124", timeout_s=30)
    assert settle(ex, ex.submit(sub), sub) == Finished(124, "")


def test_job_killed_outside_talon_is_recorded_by_the_wrapper(
    ex: LocalExecutor, make_sub: MakeSub, tmp_path: Path
) -> None:
    pid_file = tmp_path / "job.pid"
    sub = make_sub(("sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"))
    handle = ex.submit(sub)
    os.kill(int(wait_for(pid_file)), signal.SIGKILL)
    assert settle(ex, handle, sub) == Finished(137, "killed by signal 9 (SIGKILL)")


def test_wrapper_and_job_killed_is_lost(
    ex: LocalExecutor, make_sub: MakeSub, tmp_path: Path
) -> None:
    pid_file = tmp_path / "job.pid"
    sub = make_sub(("sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"))
    handle = ex.submit(sub)
    job = int(wait_for(pid_file))
    os.kill(handle["pid"], signal.SIGKILL)
    os.kill(job, signal.SIGKILL)
    assert settle(ex, handle, sub) == Lost(
        f"process {handle['pid']} vanished without recording an exit status"
    )


def test_a_run_lost_with_its_wrapper_has_what_it_left_killed(
    ex: LocalExecutor, make_sub: MakeSub, tmp_path: Path
) -> None:
    """A shell loop left running by a wrapper killed -9: the loop's shell is a fork of the
    wrapper (of the spare, which has no TALON_RUN_ID in its environment), its sleeps are
    the run's. All of it is killed when the run is found lost."""
    flag = tmp_path / "looping"
    loop = f"touch {flag}; while :; do sleep 0.2; done"
    sub = make_sub(loop, run_id="r-left", env={"TALON_RUN_ID": "r-left"})  # (as in a pass)
    handle = ex.submit(sub)
    wait_for_path = time.monotonic() + 10
    while not flag.exists():
        assert time.monotonic() < wait_for_path
        time.sleep(0.01)
    os.kill(handle["pid"], signal.SIGKILL)
    status = settle(ex, handle, sub)
    assert isinstance(status, Lost) and "process(es) it left" in status.reason, status
    deadline = time.monotonic() + 5
    while any(p.session == handle["pid"] and not p.dead for p in runner.processes()):
        assert time.monotonic() < deadline, "the run's loop goes on"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "change",
    [
        {"start": 1},  # a live pid that started at another time: reused
        {"boot": "another-boot"},  # the machine rebooted since
    ],
    ids=["reused-pid", "rebooted"],
)
def test_a_reused_pid_is_not_mistaken_for_the_run(
    ex: LocalExecutor, make_sub: MakeSub, change: dict[str, Any]
) -> None:
    sub = make_sub("sleep 60")
    real = ex.submit(sub)
    try:
        handle = {**real, "pid": os.getpid(), **change}  # this process is alive, but not the run
        assert ex.poll(handle, sub) == Lost(
            f"process {os.getpid()} vanished without recording an exit status"
        )
        ex.cancel(handle, sub)  # must not signal this process
    finally:
        ex.cancel(real, sub)
        settle(ex, real, sub)


def test_unusable_handle_is_lost(ex: LocalExecutor, make_sub: MakeSub) -> None:
    status = ex.poll({"pid": "x"}, make_sub("true"))
    assert isinstance(status, Lost)
    assert "unusable" in status.reason


def test_adopt_finds_a_run_whose_handle_was_never_recorded(
    ex: LocalExecutor, make_sub: MakeSub
) -> None:
    sub = make_sub("sleep 60")
    handle = ex.submit(sub)
    try:
        assert ex.adopt(make_sub("true", run_id="other")) is None
        # The same job and run in another repository on this host is not this run: adopting
        # it recorded another checkout's process (and its success) as this run's.
        elsewhere = sub.status_dir.parent.parent.parent / "elsewhere" / "state" / ".talon"
        twin = replace(
            sub,
            status_dir=elsewhere / "proc",
            shared_status=None if sub.shared_status is None else elsewhere / "proc" / "x.status",
        )
        assert ex.adopt(twin) is None
        adopted = ex.adopt(sub)
        assert adopted is not None
        assert (adopted["pid"], adopted["start"], adopted["rc_file"]) == (
            handle["pid"],
            handle["start"],
            handle["rc_file"],
        )
        assert isinstance(ex.poll(adopted, sub), Running)
    finally:
        ex.cancel(handle, sub)
    assert settle(ex, handle, sub) == Finished(143, "cancelled")
    adopted = ex.adopt(sub)  # the process is gone; its status file remains
    assert adopted is not None
    assert ex.poll(adopted, sub) == Finished(143, "cancelled")


def test_resubmit_clears_the_previous_attempts_status(ex: LocalExecutor, make_sub: MakeSub) -> None:
    first = make_sub("exit 5", run_id="same")
    assert settle(ex, ex.submit(first), first) == Finished(5)
    again = make_sub("sleep 0.3", run_id="same")
    handle = ex.submit(again)
    assert isinstance(ex.poll(handle, again), Running)
    assert settle(ex, handle, again) == Finished(0)


@pytest.mark.parametrize(
    ("command", "workdir", "reason"),
    [
        ("", None, "empty command"),
        ((), None, "empty command"),
        ("true", "missing", "working directory"),
    ],
    ids=["empty-string", "empty-argv", "missing-workdir"],
)
def test_submit_refuses_what_cannot_start(
    ex: LocalExecutor,
    make_sub: MakeSub,
    tmp_path: Path,
    command: str | tuple[str, ...],
    workdir: str | None,
    reason: str,
) -> None:
    kw = {"workdir": tmp_path / workdir} if workdir else {}
    with pytest.raises(SubmitRefused) as info:
        ex.submit(make_sub(command, **kw))
    assert reason in info.value.reason
    assert not info.value.retryable


def test_bad_kill_grace_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="kill_grace"):
        LocalExecutor({"kill_grace": "soon"})
    assert LocalExecutor({"kill_grace": "1m"}).kill_grace_s == 60


def test_poll_reaps_the_wrappers_it_started(ex: LocalExecutor, make_sub: MakeSub) -> None:
    sub = make_sub("true")
    handle = ex.submit(sub)
    assert settle(ex, handle, sub) == Finished(0)
    with pytest.raises(ChildProcessError):
        os.waitpid(handle["pid"], os.WNOHANG)  # already collected: no zombie left behind


def test_registry_builds_executors_by_type() -> None:
    from talon.executors.inprocess import InprocessExecutor
    from talon.executors.registry import EXECUTOR_TYPES, executor_for

    assert isinstance(executor_for("local", {"kill_grace": 3}), LocalExecutor)
    assert isinstance(executor_for("inprocess", {}), InprocessExecutor)
    assert set(EXECUTOR_TYPES) == {"local", "inprocess", "ssh", "sge", "slurm"}
    with pytest.raises(ValueError, match="unknown executor type 'lsf'"):
        executor_for("lsf", {})


def test_a_command_string_runs_as_if_under_sh_c(ex: LocalExecutor, make_sub: MakeSub) -> None:
    """A string without a timeout runs in the wrapper's own subshell (one exec fewer): it must
    see what `sh -c STRING` would: none of the wrapper's variables or arguments, default
    signal dispositions, its own exit status, its syntax errors as status 2."""
    probe = make_sub('echo "[$r][$d][$x][$t][$k][$c][$#][$*]"; trap; exit 7')
    assert runner.INLINE in ex_argv(probe), "the fast path is the one tested"
    status = settle(ex, ex.submit(probe), probe)
    assert isinstance(status, Finished) and status.exit_code == 7, status
    assert log_of(probe) == "[][][][][][][0][]\n", "nothing of the wrapper leaks, no traps set"
    broken = make_sub("if then fi")
    status = settle(ex, ex.submit(broken), broken)
    assert isinstance(status, Finished) and status.exit_code == 2, status
    assert "syntax error" in log_of(broken).lower()
    assert log_of(broken).startswith("talon-run: 1: "), "the shell's own line numbers"


def test_a_command_string_using_its_pid_gets_a_shell_of_its_own(
    ex: LocalExecutor, make_sub: MakeSub
) -> None:
    """`$$` in a subshell would be the wrapper's pid; such commands run under `sh -c`."""
    sub = make_sub('echo "$$ $PPID"; cat /proc/$$/cmdline | tr "\\0" " "')
    assert runner.INLINE not in ex_argv(sub)
    handle = ex.submit(sub)
    status = settle(ex, handle, sub)
    assert isinstance(status, Finished) and status.exit_code == 0, status
    pid, ppid, *cmdline = log_of(sub).split()
    assert int(ppid) == handle["pid"], "its parent is the wrapper"
    assert int(pid) != handle["pid"]
    assert cmdline[:2] == ["/bin/sh", "-c"]


def test_cancel_stops_an_inline_command(ex: LocalExecutor, make_sub: MakeSub) -> None:
    sub = make_sub("sleep 30; echo not reached")
    handle = ex.submit(sub)
    deadline = time.monotonic() + 5
    # (Until then a SIGTERM lands on shells that trap it: the run would end in the SIGKILL
    # after the grace, 137, on a loaded machine.)
    while time.monotonic() < deadline and not any(
        runner.cmdline(p.pid)[:1] == ["sleep"] for p in runner.run_members(handle["pid"])
    ):
        time.sleep(0.01)
    ex.cancel(handle, sub)
    status = settle(ex, handle, sub)
    assert isinstance(status, Finished) and status.exit_code == 128 + signal.SIGTERM, status
    assert "not reached" not in log_of(sub)


@pytest.mark.parametrize(
    ("command", "code", "output"),
    [
        ("true", 0, ""),
        ("false", 1, ""),
        ("echo 'a  b' c", 0, "a  b c\n"),
        ("/usr/bin/printf %s,%s x 'y z'", 0, "x,y z"),
        ("sh -c 'exit 3'", 3, ""),
        ("nosuch-program --flag", 127, "talon-run: 1: eval: nosuch-program: not found"),
    ],
)
def test_a_plain_command_runs_in_the_wrapper_as_under_sh_c(
    ex: LocalExecutor, make_sub: MakeSub, command: str, code: int, output: str
) -> None:
    """One simple command of plain words skips the subshell: same status, same output (the
    message of a missing program included, as `sh -c` via the subshell's eval gives it)."""
    sub = make_sub(command)
    assert ex_argv(sub) == (runner.INLINE, command, runner.PLAIN), "the plain path is tested"
    status = settle(ex, ex.submit(sub), sub)
    assert isinstance(status, Finished) and status.exit_code == code, status
    assert output in log_of(sub)


def test_a_plain_program_is_the_wrappers_child_with_default_signals(
    ex: LocalExecutor, make_sub: MakeSub
) -> None:
    """No subshell in between, and nothing of the wrapper's traps: the program's parent is the
    wrapper, and a cancel stops it (the wrapper records 143)."""
    sub = make_sub("sleep 30")
    assert runner.plain_command("sleep 30")
    handle = ex.submit(sub)
    deadline = time.monotonic() + 5
    members: list[runner.Proc] = []
    while time.monotonic() < deadline:
        members = [p for p in runner.run_members(handle["pid"]) if p.pid != handle["pid"]]
        # (Until its exec, the child is a fork of the wrapper, with the wrapper's traps.)
        if members and runner.cmdline(members[0].pid)[:1] == ["sleep"]:
            break
        time.sleep(0.01)
    assert [p.ppid for p in members] == [handle["pid"]], "sleep runs straight under the wrapper"
    with open(f"/proc/{members[0].pid}/status") as fh:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in fh)
    assert int(fields["SigIgn"], 16) & (1 << (signal.SIGTERM - 1)) == 0
    assert int(fields["SigCgt"], 16) == 0, "the wrapper's traps do not reach the program"
    ex.cancel(handle, sub)
    status = settle(ex, handle, sub)
    assert status == Finished(128 + signal.SIGTERM, "cancelled")


def test_exported_functions_or_the_wrappers_names_keep_plain_commands_in_a_subshell(
    make_sub: MakeSub,
) -> None:
    """Where bash is /bin/sh it imports functions from the environment: one named like the
    program would run in the wrapper itself, and its `exit` would end the wrapper unrecorded."""
    functions = {**os.environ, "BASH_FUNC_report%%": "() { exit 9; }"}
    for environ, env, plain in [
        (functions, {}, False),
        (dict(os.environ), {"BASH_FUNC_report%%": "() { exit 9; }"}, False),
        (dict(os.environ), {"_talon_d": "mine"}, False),  # (the wrapper's own names)
        (dict(os.environ), {}, True),
    ]:
        executor = LocalExecutor({}, environ=environ)
        sub = make_sub("sleep 30", env=env, shared_status=None)
        handle = executor.submit(sub)
        try:
            argv: list[str] = []
            deadline = time.monotonic() + 5
            while not argv and time.monotonic() < deadline:  # (empty until its exec is done)
                argv = runner.cmdline(handle["pid"])
            assert argv and (argv[-1] == runner.PLAIN) is plain, argv
        finally:
            executor.cancel(handle, sub)
            assert isinstance(settle(executor, handle, sub), Finished)


@pytest.mark.parametrize("sig", ["USR1", "TERM", "ALRM"])
def test_a_plain_program_that_signals_its_parent_does_not_lose_the_run(
    ex: LocalExecutor, make_sub: MakeSub, tmp_path: Path, sig: str
) -> None:
    """A plain command's parent is the wrapper: a program that signals its parent must not end
    the wrapper (the run would be lost, and what it left killed): its own status is recorded."""
    script = tmp_path / "work" / "signal-parent"
    script.write_text(f"kill -{sig} $PPID\nsleep 0.2\necho after\nexit 5\n")
    sub = make_sub("sh ./signal-parent")
    assert runner.plain_command("sh ./signal-parent")
    status = settle(ex, ex.submit(sub), sub)
    assert status == Finished(5), status
    assert log_of(sub) == "after\n"


@pytest.mark.parametrize(
    ("command", "plain"),
    [
        ("true", True),
        ("./bin/extract --day 2026-11-27 --out=/srv/x", True),
        ("python3 -m jobs.nightly", True),
        ("report --title 'a; b $HOME'", True),  # (quoted: nothing to expand)
        ("  sleep 5  ", True),
        ("exit 3", False),
        ("exec ./job", False),
        ("set -e", False),
        ("cd /tmp", False),
        ("trap '' TERM", False),
        ("read x", False),
        ("printf -v _talon_r %s elsewhere", False),  # (bash's printf assigns)
        ("test -v _talon_r", False),  # (and test sees the wrapper's variables)
        ("wait", False),
        ("FOO=1 ./job", False),
        ("./a; ./b", False),
        ("./a && ./b", False),
        ("./a | ./b", False),
        ("./a > out", False),
        ("./a &", False),
        ("echo $HOME", False),
        ('echo "x"', False),
        ("ls *.log", False),
        ("./a\n./b", False),
        ("echo ~", False),
        ("./a # comment", False),
        ("while true", False),
        ("", False),
    ],
)
def test_what_counts_as_a_plain_command(command: str, plain: bool) -> None:
    assert runner.plain_command(command) is plain


def ex_argv(sub: Submission) -> tuple[str, ...]:
    from talon.executors.local import _argv

    return _argv(sub.command, inline=sub.timeout_s is None)


@pytest.mark.parametrize(
    "command", ['echo "[$c][$r][$k]"', 'echo "[$c][$r][$k] $$" >/dev/null; echo "[$c][$r][$k]"']
)
def test_the_wrapper_leaves_the_jobs_environment_alone(
    ex: LocalExecutor, make_sub: MakeSub, command: str
) -> None:
    """Short names in a job's environment reach the command unchanged, on both paths."""
    sub = make_sub(command, env={"c": "see", "r": "are", "k": "kay"})
    status = settle(ex, ex.submit(sub), sub)
    assert isinstance(status, Finished) and status.exit_code == 0, status
    assert log_of(sub) == "[see][are][kay]\n"


def test_the_start_time_in_the_handle_is_the_one_proc_shows(
    ex: LocalExecutor, make_sub: MakeSub
) -> None:
    """submit takes the start time from the boot clock around the spawn when it can (see
    runner.boot_tick); whichever way, it must be what /proc says, or the run would be taken
    for lost."""
    for _ in range(100):
        sub = make_sub("true")
        handle = ex.submit(sub)
        found = runner.read_proc(handle["pid"])  # our child: not reaped until the poll
        assert found is not None and handle["start"] == found.start
        assert settle(ex, handle, sub) == Finished(0)


def test_a_spare_wrapper_takes_the_run_as_a_spawned_one_would(tmp_path: Path) -> None:
    """`prepare_spare` starts a wrapper before its run is known; `submit` hands it the run's script
    through a pipe. What the command sees is what a spawned wrapper gives it."""
    status = tmp_path / "state/.talon/proc/p1-1.status"
    work = tmp_path / "work"
    work.mkdir()
    ex = LocalExecutor({"kill_grace": GRACE})
    ex.prepare_spare()
    spare = ex._spare
    assert spare is not None
    tricky = 'it\'s "quoted" $HOME `x` \\ and\na newline, a byte \udce9 not UTF-8'
    sub = Submission(
        run_id="r1",
        job="job",
        command='printf "%s|%s|%s|%s|" "$0" "$#" "$(pwd)" "$TRICKY"; '
        "if [ -e /proc/self/fd/3 ]; then echo fd3; else echo closed; fi; exit 3",
        env={"TRICKY": tricky, "TALON_RUN_ID": "r1"},
        log_path=tmp_path / "state/2026-11-27/job/r1.log",
        status_dir=status.parent,
        workdir=work,
        shared_status=status,
    )
    handle = ex.submit(sub)
    assert handle["pid"] == spare.pid and ex._spare is None, "the spare took the run"
    assert settle(ex, handle, sub) == Finished(3)
    assert sub.log_path.read_bytes() == os.fsencode(f"talon-run|0|{work}|{tricky}|closed\n")
    lines = [ln for ln in status.read_text().splitlines() if ln]
    started = f"{handle['key']} + {spare.pid} {spare.start} {handle['boot']}"
    assert lines[0] == started
    key, code, uptime = lines[1].split(" ")  # (and the boot clock when the command ended)
    assert (key, code) == (handle["key"], "3") and float(uptime) > 0
    # No spare, or a run it cannot take (a timeout): started the usual way.
    other = Submission(
        "r2",
        "job",
        "true",
        {},
        sub.log_path.with_name("r2.log"),
        status.parent,
        workdir=work,
        timeout_s=30,
        shared_status=status,
    )
    ex.prepare_spare()
    kept = ex._spare
    handle2 = ex.submit(other)
    assert kept is not None and ex._spare is kept and handle2["pid"] != kept.pid
    assert settle(ex, handle2, other) == Finished(0)
    # Names sh keeps for itself are left to the spawned wrapper too.
    own = Submission(
        "r3",
        "job",
        "true",
        {"IFS": ":"},
        sub.log_path.with_name("r3.log"),
        status.parent,
        workdir=work,
        shared_status=status,
    )
    handle3 = ex.submit(own)
    assert ex._spare is kept and handle3["pid"] != kept.pid
    assert settle(ex, handle3, own) == Finished(0)
    ex.close_spare()
    assert runner.read_proc(kept.pid) is None, "an unused spare exits and is collected"
