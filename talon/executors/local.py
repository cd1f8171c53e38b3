"""The `local` executor: a detached process on this machine, followed through /proc.

Submit starts the run wrapper (`talon.executors.runner.WRAPPER`, POSIX sh) in a new session and
returns at once; the wrapper runs the command, waits for it and records its exit status, so the
run outlives the `talon reconcile` that started it and a later pass collects it.

The command: a string runs as by `/bin/sh -c STRING` (in a subshell of the wrapper, which is
that shell already, or in the wrapper itself when it is one plain simple command, see
`runner.plain_command`; under `sh -c` when a timeout puts `timeout` in between); an argv tuple is
executed directly, no shell, so every argument arrives literally. The environment is Talon's
own plus `sub.env`, the working directory `sub.workdir` (else `TALON_REPO`, else the current
one), stdin /dev/null, stdout and stderr appended to `sub.log_path`. Signal dispositions and
mask are reset to the defaults.

Handle (JSON, stored in the run file):

    {"pid": 4242,              the wrapper: leader of the run's session and process group
     "start": 1234567,         its start time in clock ticks since boot (/proc/<pid>/stat)
     "boot": "98fdf961-...",   the boot it started in: pid + start + boot name one process
     "rc_file": "/abs/state/.talon/proc/<job>.<run>.<crc>.rc",   or a shared file (below)
     "key": null,              or the run's line key in a shared status file
     "submitted": 1764270000.123,   epoch seconds, just before the wrapper started
     "timeout_s": 7200.0}      or null

Status files in `sub.status_dir`, one per run, named `<job>.<run-id>.<crc32 of the log path>`:

    .rc      the exit status as one line ("0\\n"), written once by the wrapper when the command
             ends. No temp file and rename: a reader only trusts a line that ends in a newline,
             so a half-written file reads as "not yet" (this saves a file creation and a `mv`
             exec per run, ~40 % of the wrapper's cost). Not fsynced: after a power cut the run
             is reported lost rather than finished, which is the worst that can happen.
    .cancel  only for cancelled runs: when SIGTERM was sent (makes cancel idempotent).

Files are left in place for `talon fsck` or the caller to prune; submit removes stale ones.

A shared status file (`sub.shared_status`, `<name>.status`, given by the caller) replaces the
`.rc` files of runs without a timeout: every wrapper of one Talon process appends a line
`<key> <status> <uptime>` to it (`>>`: O_APPEND, one small write, whole; the uptime is the boot
clock when the command ended, which `poll` turns into `Finished.ended`; an own `.rc` file's
mtime says the same). No file is created or deleted
per run, which on these disks costs more than the rest of the wrapper (an inode allocated, then
freed, and each allocation scans the inodes freed in the last minutes). The key is the run's
`.rc` name without the suffix, plus the submit time, so a run started again never reads an old
line. `.cancel` files stay per run (`<key>.cancel`). The caller prunes a shared file once no open
run names it (`prune_shared_status`). Runs with a timeout keep their `.rc` file: the detail
"timed out" compares its mtime with the deadline.

Timeouts (`sub.timeout_s`) are enforced by the wrapper through coreutils `timeout -k GRACE`:
SIGTERM to the command's process group at the deadline, SIGKILL after `kill_grace` (config,
default 10s). The recorded status is 124 when the command stopped on SIGTERM, 137 when it had to
be killed; either way `poll` says `Finished(code, detail="timed out after 2h")`.

Cancel sends SIGTERM (see `runner.terminate`), records it in `.cancel` and starts a detached
`python -m talon.executors.runner escalate` that SIGKILLs what is left after `kill_grace`; it
does not wait. The wrapper survives both and records the status (143, or 137 after SIGKILL), so
a later poll says `Finished(..., detail="cancelled")`. Cancel is idempotent; a repeated cancel or a
poll after the grace escalates itself if the helper could not.

Poll: `Finished` once the status line exists; `Running` while the wrapper (pid, start time and
boot all matching) is alive; `Lost` otherwise. Kill -9 of the command alone is `Finished(137)`
(the wrapper records it); kill -9 of the wrapper is `Lost`, and `poll` then kills what the
run left in its session (`runner.kill_leftovers`), which would go on holding its resources. A
wrapper this process started is reaped by the poll that sees it finish, so a long-lived `talon
watch` keeps no zombies; a short pass leaves its wrappers to init. `adopt` finds a wrapper by
its command line in /proc (or a status file left by one), for a pass that died before
recording the handle.

A spare (`prepare_spare`, for `reconcile --wait`): a wrapper started before its run is known, in its
own session, waiting on a pipe for the script of its run (`sh -c '. /dev/fd/3'`). `submit` hands
it the next eligible run (a shell string, no timeout, a shared status file): a write to a pipe
instead of a spawn and an exec, so in a chain of jobs the next one runs about 0.7 ms sooner.
The script does what `runner.WRAPPER` does, and first appends `KEY + PID` to the status file,
by which `adopt` finds a run started this way (its command line names no run). A spare that
never gets a run reads end-of-file when its Talon process closes the pipe or dies, and exits.

`max_parallel` is enforced by the caller.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from talon.executors import runner
from talon.executors.base import (
    Finished,
    Handle,
    Lost,
    PendingSubmit,
    Running,
    Status,
    Submission,
    SubmitRefused,
)
from talon.executors.status_files import (
    LocalHandle,
    cancel_file,
    clear_status,
    ended_at,
    make_status_dir,
    prune_shared_status,
    prune_status,
    read_status,
    shared_lines,
    shared_status_name,
    status_file,
    status_of,
)

if TYPE_CHECKING:  # (ctypes and a thread: imported by the first pass that needs them)
    from talon.executors.spawning import Spawned, Spawner

__all__ = [
    "LocalExecutor",
    "prune_shared_status",
    "prune_status",
    "shared_status_name",
    "status_file",
]

DEFAULT_KILL_GRACE_S = 10.0
EXIT_TIMED_OUT = 124
EXIT_KILLED = 128 + signal.SIGKILL
_SHELL = "/bin/sh"
# Every signal back to its default disposition in the wrapper (Python ignores SIGPIPE and
# SIGXFSZ, a caller may ignore others); the wrapper's traps do not reach the command.
_DEFAULT_SIGNALS = tuple(
    s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)
)
_CLOCK_SLACK_S = 0.05  # file times come from a coarse clock


@dataclass
class _Spare:
    """A wrapper started ahead of its run (see `LocalExecutor.prepare_spare`)."""

    pid: int
    start: int | None
    pipe: int  # the write end: the run's script goes here, then end-of-file
    mark: str  # `_TALON_SPARE` in its environment (see LocalHandle.spare)


class LocalExecutor:
    """Runs commands as detached local processes. Config: `kill_grace` (seconds, default 10)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        environ: Mapping[str, str] | None = None,
        proc: Path = runner.PROC,
    ) -> None:
        self.kill_grace_s = _seconds(config.get("kill_grace"), DEFAULT_KILL_GRACE_S, "kill_grace")
        # A plain copy: os.environ decodes every entry on each iteration, once per run.
        self._environ = dict(os.environ if environ is None else environ)
        self._not_plain = any(k.startswith(_NOT_PLAIN) for k in self._environ)
        self._proc = proc
        self._boot: str | None = None  # read once; constant while this process lives
        self._timeout_program: str | None = None
        self._spare: _Spare | None = None
        self._dropped: list[int] = []  # spares let go without a run, to collect

    # --- the protocol ----------------------------------------------------------------------

    def prepare_spare(self) -> None:
        """Have a spare wrapper ready for the next run (see the module's docstring)."""
        self._reap_dropped()
        if self._spare is not None:
            return
        try:
            read, write = os.pipe()
        except OSError:
            return  # no spare: runs start the usual way
        try:
            if read < 4:  # fd 3 in the child must be a dup, which clears close-on-exec
                moved = fcntl.fcntl(read, fcntl.F_DUPFD_CLOEXEC, 4)
                os.close(read)
                read = moved
            mark = f"{os.getpid()}.{time.time_ns():x}"
            pid, start = self._spawn(
                # The traps first: a run cancelled the moment it is handed over still records
                # how it ended (see runner.WRAPPER).
                ["sh", "-c", f"trap : {runner.TRAPPED}; . /dev/fd/3", runner.WRAPPER_NAME],
                {**self._environ, "_TALON_SPARE": mark},
                [
                    (os.POSIX_SPAWN_DUP2, read, 3),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
            )
        except OSError:
            os.close(write)
            return  # no spare: runs start the usual way
        finally:
            os.close(read)
        self._spare = _Spare(pid, start, write, mark)

    def _spawn(
        self, argv: list[str], env: Mapping[str, str], file_actions: list[tuple[Any, ...]]
    ) -> tuple[int, int | None]:
        """Start a wrapper: a session of its own, stdin from /dev/null, the signal mask and
        dispositions at their defaults. Returns its pid and start time (clock ticks)."""
        before = runner.boot_tick()
        pid = os.posix_spawn(
            _SHELL,
            argv,
            env,
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), *file_actions],
            setsid=True,
            setsigmask=(),
            setsigdef=_DEFAULT_SIGNALS,
        )
        # The spawn began and ended within one tick: that tick is its start (runner.boot_tick).
        exact = before if before == runner.boot_tick() and self._proc == runner.PROC else None
        return pid, self._start_of(pid, exact)

    def _start_of(self, pid: int, exact: int | None) -> int | None:
        """A wrapper's start time: `exact` if the spawn knew it, else as /proc says (race-free:
        until we reap it, its pid cannot be reused)."""
        if exact is not None:
            return exact
        found = runner.read_proc(pid, self._proc)
        return found.start if found is not None else None

    def close_spare(self) -> None:
        """Let an unused spare go (it reads end-of-file and exits) and collect it."""
        spare, self._spare = self._spare, None
        if spare is not None:
            os.close(spare.pipe)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(spare.pid, 0)
        self._reap_dropped()

    def _drop(self, spare: _Spare) -> None:
        os.close(spare.pipe)  # it reads end-of-file and exits
        self._dropped.append(spare.pid)

    def _reap_dropped(self) -> None:
        for pid in list(self._dropped):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._dropped.remove(pid)

    def submit(self, sub: Submission) -> Handle:
        return self._submit(sub, None).result()

    def submit_soon(self, sub: Submission) -> PendingSubmit:
        """`submit`, with the spawn itself left to the spawner threads (`talon.executors.spawning`)
        where it can be: returns once the log is open and the start handed over, so the caller
        prepares its next run while this one starts. Errors come from `result()`."""
        try:
            from talon.executors.spawning import Spawner

            spawner = Spawner.available() if self._proc == runner.PROC else None
            return self._submit(sub, spawner)
        except Exception as exc:  # (SubmitRefused included) raised by result(), as by submit
            return _Over(error=exc)

    def _submit(self, sub: Submission, spawner: Spawner | None) -> PendingSubmit:
        plain = not self._not_plain and not any(k.startswith(_NOT_PLAIN) for k in sub.env)
        argv = _argv(sub.command, inline=sub.timeout_s is None, plain=plain)
        workdir = self._workdir(sub)
        timeout_program = self._timeout() if sub.timeout_s is not None else ""
        submitted = time.time()
        if sub.shared_status is not None and sub.timeout_s is None:
            rc_file = Path(os.path.abspath(sub.shared_status))
            key: str | None = f"{status_file(sub).stem}.{int(submitted * 1e6):x}"
            make_status_dir(rc_file.parent)
        else:
            rc_file, key = status_file(sub), None
            clear_status(rc_file)
        if self._spare is not None and key is not None and argv[0] == runner.INLINE:
            handed = self._hand_over(sub, argv, workdir, rc_file, key, submitted)
            if handed is not None:
                return _Over(handed)
        wrapper = [
            "sh",
            "-c",
            runner.WRAPPER,
            runner.WRAPPER_NAME,
            str(rc_file),
            key or "",
            str(workdir),
            timeout_program,
            _seconds_arg(sub.timeout_s if sub.timeout_s is not None else 0.0),
            _seconds_arg(self.kill_grace_s),
            *argv,
        ]
        env = {**self._environ, **sub.env}
        handle = LocalHandle(
            pid=None,
            start=None,
            boot=self._boot_id() or None,
            rc_file=rc_file,
            submitted=submitted,
            timeout_s=sub.timeout_s,
            key=key,
        )
        log_fd = _open_log(sub.log_path)
        if spawner is not None:
            # The spawner closes the log once the child has it.
            started = spawner.start(_SHELL, wrapper, env, [(log_fd, 1), (log_fd, 2)], log_fd)
            return _Spawning(self, spawner, started, handle)
        try:
            try:
                pid, start = self._spawn(
                    wrapper,
                    env,
                    [(os.POSIX_SPAWN_DUP2, log_fd, 1), (os.POSIX_SPAWN_DUP2, log_fd, 2)],
                )
            except OSError as exc:
                raise _refused(exc.errno, exc.strerror) from exc
        finally:
            os.close(log_fd)
        return _Over(replace(handle, pid=pid, start=start).as_json())

    def _hand_over(
        self,
        sub: Submission,
        argv: tuple[str, ...],
        workdir: Path,
        rc_file: Path,
        key: str,
        at: float,
    ) -> Handle | None:
        """Give the spare its run; None if it cannot take it (it is gone: start as usual).

        The `KEY + PID START BOOT` line goes to the status file first, written here: from then
        on `adopt` finds the run (the spare's command line names none). A pass dying before
        the script is written leaves a spare that reads end-of-file and runs nothing, and the
        run is found lost rather than started twice."""
        if any(not _ENV_NAME.fullmatch(n) or n in _SHELL_OWN for n in sub.env):
            return None  # names the shell would take for itself: the spawned wrapper's way
        script = _spare_script(
            sub, argv[1], workdir, rc_file, key, plain=argv[2:] == (runner.PLAIN,)
        )
        data = script.encode(sys.getfilesystemencoding(), "surrogateescape")
        spare, self._spare = self._spare, None
        assert spare is not None
        try:
            os.close(_open_log(sub.log_path))  # made here: a failure is this pass's to report
            boot = self._boot_id() or None
            started = f"\n{key} + {spare.pid} {spare.start} {boot}\n".encode()
            fd = os.open(rc_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, started)
            finally:
                os.close(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(spare.pipe, view) :]
        except OSError:
            self._drop(spare)
            return None  # (a `+` line without its run reads as lost, never as started twice)
        except BaseException:
            self._drop(spare)
            raise
        os.close(spare.pipe)
        handle = LocalHandle(spare.pid, spare.start, boot, rc_file, at, None, key, spare.mark)
        return handle.as_json()

    def poll(self, handle: Handle, sub: Submission) -> Status:
        status = self._poll(handle, act=True)
        if isinstance(status, Lost):
            h = LocalHandle.parse(handle)
            if h is not None and h.pid is not None and h.boot in (None, self._boot_id()):
                killed = runner.kill_leftovers(h.pid, sub.run_id, self._proc, h.spare)
                if killed:
                    return Lost(f"{status.reason}; killed the {killed} process(es) it left")
        return status

    def look(self, handle: Handle) -> Status:
        """What `poll` would answer, without acting on it: no wrapper reaped, no overdue
        SIGKILL sent (for `talon fsck`, which must change nothing)."""
        return self._poll(handle, act=False)

    def _poll(self, handle: Handle, *, act: bool) -> Status:
        h = LocalHandle.parse(handle)
        if h is None:
            return Lost(f"unusable local handle {handle!r}")
        code, raw = status_of(h)
        if code is not None:
            if act:
                self._reap(h)
            return self._finished(h, code, raw)
        proc = self._identify(h)
        if proc is not None and not proc.dead:
            if act:
                self._escalate_if_due(h)
            return Running(f"pid {h.pid}")
        if act:
            self._reap(h)
        code, raw = status_of(h)  # it may have been written since the first look
        if code is not None:
            return self._finished(h, code, raw)
        if raw:
            return Lost(
                f"process {h.pid} vanished leaving an unreadable exit status {raw!r} in {h.rc_file}"
            )
        if h.pid is None:
            return Lost(f"no process and no exit status in {h.rc_file}")
        return Lost(f"process {h.pid} vanished without recording an exit status")

    def _finished(self, h: LocalHandle, code: int, raw: str) -> Finished:
        return Finished(code, self._detail(h, code), ended_at(h, raw, self._boot_id() or None))

    def cancel(self, handle: Handle, sub: Submission) -> None:
        h = LocalHandle.parse(handle)
        if h is None or h.pid is None or status_of(h)[0] is not None:
            return
        proc = self._identify(h)
        if proc is None or proc.dead:
            self._reap(h)
            return
        try:
            fd = os.open(cancel_file(h), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            self._escalate_if_due(h)  # already cancelled: only the SIGKILL may be left to do
            return
        with os.fdopen(fd, "w") as fh:
            fh.write(f"SIGTERM at {time.time():.3f}; SIGKILL after {self.kill_grace_s:g}s\n")
        # Who is in the run before the signal: a shell in between may die of it at once while
        # the command ignores it, and the wrapper then leaves (see runner.escalate).
        members = runner.run_members(h.pid, self._proc)
        runner.terminate(h.pid, timeout_program=h.timeout_s is not None, proc=self._proc)
        self._spawn_escalation(h, members)

    def adopt(self, sub: Submission) -> Handle | None:
        rc_file = status_file(sub)
        prefix = f"{rc_file.stem}."
        for p in runner.processes(self._proc):
            if p.pid != p.session or p.dead:
                continue
            argv = runner.cmdline(p.pid, self._proc)
            if argv[3:4] != [runner.WRAPPER_NAME] or len(argv) < 6:
                continue
            if not _same_dir(Path(argv[4]).parent, rc_file.parent):
                # Another repository's (or state directory's) wrapper: the same job and run
                # id, even the same key prefix, can be another checkout's on this host.
                continue
            key = argv[5] if argv[5].startswith(prefix) else None
            if argv[4] == str(rc_file) or key is not None:
                try:
                    started = runner.boot_time(self._proc) + p.start / os.sysconf("SC_CLK_TCK")
                except OSError:
                    started = time.time()
                h = LocalHandle(
                    p.pid,
                    p.start,
                    self._boot_id() or None,
                    Path(argv[4]),
                    started,
                    sub.timeout_s,
                    key,
                )
                return h.as_json()
        if read_status(rc_file)[0] is not None:
            return LocalHandle(
                None, None, None, rc_file, rc_file.stat().st_mtime, sub.timeout_s
            ).as_json()
        for shared in sorted(rc_file.parent.glob("*.status")):
            lines = shared_lines(shared)
            for key in reversed(list(lines)):
                if key.startswith(prefix):
                    submitted = int(key.rsplit(".", 1)[1], 16) / 1e6
                    pid, start = self._started_by_spare(lines[key])
                    boot = self._boot_id() or None if pid is not None else None
                    return LocalHandle(
                        pid, start, boot, shared, submitted, sub.timeout_s, key
                    ).as_json()
        return None

    def _started_by_spare(self, status: str) -> tuple[int | None, int | None]:
        """A line `+ PID START BOOT` (a spare took its run, which has not ended): the process,
        if it is still that one (pid, start time and boot all matching)."""
        fields = status.split()
        if len(fields) != 4 or fields[0] != "+" or not fields[1].isdigit():
            return None, None
        pid, start = int(fields[1]), int(fields[2]) if fields[2].isdigit() else None
        boot = None if fields[3] == "None" else fields[3]
        found = runner.identify(pid, start, boot, self._proc, current_boot=self._boot_id())
        if found is None or found.dead:
            return None, None
        return pid, start

    # --- helpers ----------------------------------------------------------------------------

    def _boot_id(self) -> str:
        if self._boot is None:
            self._boot = runner.boot_id(self._proc)
        return self._boot

    def _identify(self, h: LocalHandle) -> runner.Proc | None:
        if h.pid is None:
            return None
        return runner.identify(h.pid, h.start, h.boot, self._proc, current_boot=self._boot_id())

    def _reap(self, h: LocalHandle) -> None:
        """Collect the wrapper if this process started it, so it does not linger as a zombie."""
        if h.pid is None:
            return
        # No identity check needed: a child's pid cannot be reused until it is reaped, so if
        # `pid` is our child it is the wrapper; if not, waitpid says so (ChildProcessError).
        for _ in range(100):
            try:
                done, _status = os.waitpid(h.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            time.sleep(0.001)  # it has recorded its status and is exiting

    def _workdir(self, sub: Submission) -> Path:
        workdir = sub.workdir or Path(
            sub.env.get("TALON_REPO") or self._environ.get("TALON_REPO") or os.getcwd()
        )
        workdir = Path(os.path.abspath(workdir))
        if not workdir.is_dir():
            raise SubmitRefused(f"working directory {workdir} does not exist", retryable=False)
        return workdir

    def _timeout(self) -> str:
        if self._timeout_program is None:
            import shutil

            self._timeout_program = shutil.which("timeout") or ""
        if not self._timeout_program:
            raise SubmitRefused(
                "the job has a timeout but coreutils `timeout` is not on PATH to enforce it",
                retryable=False,
            )
        return self._timeout_program

    def _detail(self, h: LocalHandle, code: int) -> str:
        if os.path.exists(cancel_file(h)):
            return "cancelled" + (
                f" (killed after {self.kill_grace_s:g}s)" if code == EXIT_KILLED else ""
            )
        if h.timeout_s is not None and code in (EXIT_TIMED_OUT, EXIT_KILLED):
            try:
                ended = h.rc_file.stat().st_mtime
            except OSError:
                ended = time.time()
            if ended - h.submitted >= h.timeout_s - _CLOCK_SLACK_S:
                killed = " (killed: it ignored SIGTERM)" if code == EXIT_KILLED else ""
                return f"timed out after {_human(h.timeout_s)}{killed}"
        if code > 128:
            try:
                return f"killed by signal {code - 128} ({signal.Signals(code - 128).name})"
            except ValueError:
                pass
        return ""

    def _escalate_if_due(self, h: LocalHandle) -> None:
        """SIGKILL a cancelled run whose grace is over (if the escalation helper did not)."""
        if h.pid is None:
            return
        try:
            since = os.stat(cancel_file(h)).st_mtime
        except OSError:
            return
        if time.time() - since >= self.kill_grace_s + 1.0:
            runner.kill_members(h.pid, self._proc)

    def _spawn_escalation(self, h: LocalHandle, members: list[runner.Proc]) -> None:
        assert h.pid is not None
        package_root = str(Path(runner.__file__).resolve().parents[2])
        args = [
            sys.executable,
            "-S",  # the helper needs only the standard library and talon itself
            "-m",
            "talon.executors.runner",
            "escalate",
            str(h.pid),
            str(h.start) if h.start is not None else "-",
            h.boot or "-",
            repr(self.kill_grace_s),
            runner.members_arg(members),
        ]
        env = {"PYTHONPATH": package_root, "PATH": self._environ.get("PATH", os.defpath)}
        try:
            helper = os.posix_spawn(
                sys.executable,
                args,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)
                ],
                setsid=True,
            )
            os.waitpid(helper, 0)  # it forks and exits at once; the fork does the waiting
        except OSError:
            pass  # a later cancel or poll escalates (_escalate_if_due)


# `$$` and `$PPID` are the one thing a subshell cannot make look like `sh -c`: they would name
# the wrapper and its parent. A command that uses them gets a shell of its own.
_OWN_SHELL = re.compile(r"\$\$|\$\{\$\}|PPID")


# Environment names that keep plain commands in their subshell: functions bash imports (where
# it is /bin/sh, one named like the program would run in the wrapper, and its `exit` end it
# unrecorded), and the wrapper's own variables (imported from the environment, the wrapper's
# assignments to them would be exported to the program).
_NOT_PLAIN = ("BASH_FUNC_", "_talon_")


def _argv(
    command: str | tuple[str, ...], *, inline: bool = False, plain: bool = True
) -> tuple[str, ...]:
    """The command as the wrapper's trailing arguments; `inline`: a string runs in the
    wrapper's own subshell (runner.INLINE) where it can, else under `/bin/sh -c`; `plain`:
    in the wrapper itself if it is a plain command (runner.PLAIN)."""
    if isinstance(command, str):
        if not command.strip():
            raise SubmitRefused("empty command", retryable=False)
        if inline and plain and runner.plain_command(command):
            return (runner.INLINE, command, runner.PLAIN)
        if inline and not _OWN_SHELL.search(command):
            return (runner.INLINE, command)
        return (_SHELL, "-c", command)
    if not command or not command[0]:
        raise SubmitRefused("empty command", retryable=False)
    return tuple(command)


class _Over:
    """A start that is over: its handle at once, or why it failed before its spawn."""

    def __init__(self, handle: Handle | None = None, error: Exception | None = None) -> None:
        self._handle = handle
        self._error = error

    def ready(self) -> bool:
        return True

    def result(self) -> Handle:
        if self._error is not None:
            raise self._error
        assert self._handle is not None
        return self._handle


class _Spawning:
    """A wrapper's start handed to the spawner threads."""

    def __init__(
        self, executor: LocalExecutor, spawner: Spawner, started: Spawned, handle: LocalHandle
    ) -> None:
        self._executor = executor
        self._spawner = spawner
        self._started = started
        self._handle = handle

    def ready(self) -> bool:
        return self._started.done

    def result(self) -> Handle:
        done = self._spawner.wait(self._started)
        if done.error:
            raise _refused(done.error, os.strerror(done.error))
        start = self._executor._start_of(done.pid, done.start)
        return replace(self._handle, pid=done.pid, start=start).as_json()


def _refused(code: int | None, why: str | None) -> SubmitRefused:
    return SubmitRefused(
        f"cannot start {_SHELL}: {why}", retryable=code in (errno.EAGAIN, errno.ENOMEM)
    )


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables sh sets for itself (it ignores them in the environment it starts with, but an
# `export` in a script would set them), and the spare script's own.
_SHELL_OWN = frozenset({"IFS", "OPTIND", "PPID"} | {f"_talon_{c}" for c in "rncsef"})


def _spare_script(
    sub: Submission, command: str, workdir: Path, rc_file: Path, key: str, *, plain: bool
) -> str:
    """What a spare wrapper runs: `runner.WRAPPER`'s work for a shell string without a
    timeout, with the run's environment exported (a spare started before it was known), and
    a `KEY + PID` line first, by which `adopt` finds the run."""
    from shlex import quote

    exports = "".join(f"export {name}={quote(value)}\n" for name, value in sub.env.items())
    if plain:
        run = f"eval {quote(command)}"  # (see runner.plain_command)
    else:
        run = (
            f"(_talon_c={quote(command)}; unset _talon_r _talon_n\n"
            'set --; eval "unset _talon_c; $_talon_c")'
        )
    # One compound command: sh reads all of it before running any, so a script cut short
    # (its writer killed) is a syntax error and runs nothing.
    return (
        "{ exec 3<&-; unset _TALON_SPARE\n"
        f"{exports}"
        f"_talon_r={quote(str(rc_file))} _talon_n={quote(key)}\n"
        f"exec >>{quote(str(sub.log_path))} 2>&1\n"
        f"cd -- {quote(str(workdir))} && {run}\n"
        "_talon_s=$?\n"
        f"{runner.RECORD_SHARED}\n"
        "}\n"
    )


def _same_dir(a: Path, b: Path) -> bool:
    """The same directory, however spelled (a symlink, a relative -C)."""
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _open_log(path: Path) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    if fd < 3:  # the caller runs without stdio: keep the log clear of the dup2 targets
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
        os.close(fd)
        fd = moved
    return fd


def _seconds(value: Any, default: float, name: str) -> float:
    if value is None:
        return default
    from talon.durations import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"local executor: {name}: {exc}") from None


def _seconds_arg(seconds: float) -> str:
    """A duration for `timeout`; 0 would mean "no timeout" to it, so the floor is 1 ms."""
    return f"{max(seconds, 0.001):.3f}"


def _human(seconds: float) -> str:
    if seconds >= 1 and seconds == int(seconds):
        from talon.durations import format_duration

        return format_duration(seconds)
    return f"{seconds:g}s"
