"""The spawner threads (talon.executors.spawning): what their children get, in what order, and
that a pass starting many runs through them records each run's own process."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from talon.executors.spawning import Spawner
from tests.conftest import run_talon, write_repo


@pytest.fixture
def spawner() -> Spawner:
    found = Spawner.available()
    assert found is not None  # Linux with glibc or musl: it must work here
    return found


def _log(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)


def _fds_of_a_plain_child() -> set[str]:
    """What a child started the usual way holds open (the test runner may pass some on)."""
    out = subprocess.run(
        ["sh", "-c", "ls /proc/$$/fd"], capture_output=True, text=True, check=True, close_fds=False
    )
    return set(out.stdout.split())


def test_children_lead_their_own_session_with_signals_at_default(
    spawner: Spawner, tmp_path: Path
) -> None:
    # (What the shell's children show, /proc/self: the shell blocks signals while it forks.)
    script = (
        "echo $$; cut -d' ' -f6 /proc/self/stat; grep -E '^Sig(Blk|Ign)' /proc/self/status; cat"
    )
    logs = [tmp_path / f"{i}.log" for i in range(6)]
    started = []
    for log in logs:
        fd = _log(log)
        started.append(spawner.start("/bin/sh", ["sh", "-c", script], {"X": "1"}, [(fd, 1)], fd))
    for item in started:
        spawner.wait(item)
        assert item.done and item.error == 0 and item.pid > 0
        os.waitpid(item.pid, 0)
    for item, log in zip(started, logs, strict=True):
        lines = log.read_text().splitlines()
        assert lines[0] == str(item.pid)  # the log given to this start, not another's
        assert lines[1] == str(item.pid)  # session id: it leads its own session
        fields = dict(line.split(":\t") for line in lines[2:4])
        assert int(fields["SigBlk"], 16) == 0
        # glibc keeps two real-time signals for itself; nothing else is ignored
        assert int(fields["SigIgn"], 16) & ~0x180000000 == 0
        assert len(lines) == 4  # stdin was /dev/null: cat read nothing


def test_a_start_that_cannot_exec_reports_its_errno_and_closes_the_fd(
    spawner: Spawner, tmp_path: Path
) -> None:
    fd = _log(tmp_path / "x.log")
    item = spawner.wait(spawner.start("/nonexistent/sh", ["sh"], {}, [(fd, 1)], fd))
    assert item.error == errno.ENOENT
    with pytest.raises(OSError) as closed:
        os.fstat(fd)
    assert closed.value.errno == errno.EBADF


def test_files_opened_meanwhile_do_not_leak_into_children(spawner: Spawner, tmp_path: Path) -> None:
    plain = _fds_of_a_plain_child()
    stop = threading.Event()
    opened: list[int] = []

    def churn() -> None:  # the pass opening its files while starts are under way
        while not stop.is_set():
            opened.append(os.open(tmp_path / "churn", os.O_RDONLY | os.O_CREAT))
            os.close(opened[-1])

    other = threading.Thread(target=churn)
    other.start()
    try:
        items = []
        for i in range(40):
            fd = _log(tmp_path / f"{i}.log")
            items.append(
                spawner.start("/bin/sh", ["sh", "-c", "ls /proc/$$/fd"], {}, [(fd, 1)], fd)
            )
        for item in items:
            spawner.wait(item)
            os.waitpid(item.pid, 0)
    finally:
        stop.set()
        other.join()
    assert opened  # the churn did run alongside
    for i in range(40):
        held = set((tmp_path / f"{i}.log").read_text().split())
        assert held <= plain | {"0", "1", "2", "3"}, held  # (3: the `ls` reading the dir)


def test_a_start_is_done_without_anyone_waiting_for_it(spawner: Spawner, tmp_path: Path) -> None:
    fd = _log(tmp_path / "a.log")
    item = spawner.start("/bin/true", ["true"], {}, [], fd)
    deadline = 200
    while not item.done and deadline:
        deadline -= 1
        threading.Event().wait(0.01)
    assert item.done and item.error == 0 and item.pid > 0
    os.waitpid(item.pid, 0)


@pytest.mark.parametrize(
    ("argv", "env", "why"),
    [
        (["sh", "-c", "echo ok\0; exit 3"], {}, "embedded null byte"),
        (["sh", "-c", "true"], {"A": "b\0c"}, "embedded null byte"),
        (["sh", "-c", "true"], {"A=B": "c"}, "illegal environment variable name"),
        (["sh", "-c", "true"], {"": "c"}, "illegal environment variable name"),
    ],
)
def test_a_start_refuses_what_os_posix_spawn_refuses(
    spawner: Spawner, tmp_path: Path, argv: list[str], env: dict[str, str], why: str
) -> None:
    """A C string ends at the first NUL: `echo ok\0; exit 3` would run as `echo ok` and
    succeed. Refused at once, as os.posix_spawn refuses it, and the fd handed over closed."""
    with pytest.raises(ValueError, match=why):
        os.posix_spawn("/bin/sh", argv, env)
    fd = _log(tmp_path / "a.log")
    with pytest.raises(ValueError, match=why):
        spawner.start("/bin/sh", argv, env, [(fd, 1)], fd)
    with pytest.raises(OSError) as closed:
        os.fstat(fd)
    assert closed.value.errno == errno.EBADF


def test_each_child_gets_its_own_environment_and_a_bad_entry_is_refused_every_time(
    spawner: Spawner, tmp_path: Path
) -> None:
    """Encoded entries are remembered between starts: the values each child gets are still
    its own, and an entry refused once is refused again (it was never remembered)."""
    started = []
    for i in range(5):
        log = tmp_path / f"{i}.log"
        fd = _log(log)
        env = {"SHARED": "same for all", "OWN": f"run {i}"}
        started.append(
            (
                spawner.start("/bin/sh", ["sh", "-c", "echo $SHARED/$OWN"], env, [(fd, 1)], fd),
                log,
                i,
            )
        )
    for item, log, i in started:
        spawner.wait(item)
        assert item.error == 0
        os.waitpid(item.pid, 0)
        assert log.read_text() == f"same for all/run {i}\n"
    for _ in range(2):
        fd = _log(tmp_path / "bad.log")
        with pytest.raises(ValueError, match="embedded null byte"):
            spawner.start(
                "/bin/sh",
                ["sh", "-c", "true"],
                {"SHARED": "same for all", "B": "\0"},
                [(fd, 1)],
                fd,
            )


def test_a_pass_starting_many_runs_records_each_runs_own_wrapper(tmp_path: Path) -> None:
    """Starts overlap in the spawner thread: each run file must get the handle of the
    process that ran that run. Each job writes its wrapper's pid (`$PPID` of its `sh -c`)."""
    jobs = "".join(
        f"  j{i}:\n"
        f"    command: echo $PPID >{tmp_path}/out/j{i}\n"
        "    period: daily\n"
        '    trigger: "0 6 * * *"\n'
        for i in range(40)
    )
    root = write_repo(tmp_path / "repo", {"schedule/jobs.yaml": f"jobs:\n{jobs}"})
    (tmp_path / "out").mkdir()
    assert run_talon(root, "reconcile", "--now", "2026-11-27T05:59:00+00:00").returncode == 0
    done = run_talon(root, "reconcile", "--wait", "--now", "2026-11-27T06:00:30+00:00")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("succeed") == 40
    for i in range(40):
        (run_file,) = (root / "state" / "2026-11-27" / f"j{i}").glob("*.json")
        run = json.loads(run_file.read_text())
        assert run["state"] == "succeeded"
        reported = int((tmp_path / "out" / f"j{i}").read_text())
        assert run["executor"]["handle"]["pid"] == reported, f"j{i}"
