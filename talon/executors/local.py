"""The `local` executor: a detached process on this machine, followed through /proc.

Submit starts the run wrapper (`talon.executors.runner.WRAPPER`, POSIX sh) in a new session and
returns at once; the wrapper runs the command, waits for it and records its exit status, so the
run outlives the `talon reconcile` that started it and a later pass collects it.

The command: a string runs as by `/bin/sh -c STRING` (in a subshell of the wrapper, which is
that shell already; under `sh -c` when a timeout puts `timeout` in between); an argv tuple is
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
`<key> <status>` to it (`>>`: O_APPEND, one small write, whole). No file is created or deleted
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
(the wrapper records it); kill -9 of the wrapper is `Lost`. A wrapper this process started is
reaped by the poll that sees it finish, so a long-lived `talon watch` keeps no zombies; a short
pass leaves its wrappers to init. `adopt` finds a wrapper by its command line in /proc (or a
status file left by one), for a pass that died before recording the handle.

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
import functools
import os
import re
import signal
import sys
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from talon.executors import runner
from talon.executors.base import Finished, Handle, Lost, Running, Status, Submission, SubmitRefused

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


def status_file(sub: Submission) -> Path:
    """Where the wrapper of `sub` records its exit status (a pure function of the submission).

    The run id is unique within its job and period only, so the name also carries a checksum of
    the log path (which names the period), taken from its last components so that a relative
    and an absolute spelling agree.
    """
    tail = "/".join(sub.log_path.parts[-3:])
    crc = zlib.crc32(os.fsencode(tail))
    return Path(os.path.abspath(sub.status_dir)) / f"{sub.job}.{sub.run_id}.{crc:08x}.rc"


def _cancel_file(h: _Handle) -> Path:
    if h.key is not None:
        return h.rc_file.parent / f"{h.key}.cancel"
    return h.rc_file.with_suffix(".cancel")


@dataclass(frozen=True)
class _Handle:
    pid: int | None  # None: adopted from a status file, no process to follow
    start: int | None
    boot: str | None
    rc_file: Path
    submitted: float
    timeout_s: float | None
    key: str | None = None  # the run's line in a shared status file; None: rc_file is its own

    @classmethod
    def parse(cls, handle: Handle) -> _Handle | None:
        try:
            pid = handle.get("pid")
            start = handle.get("start")
            timeout = handle.get("timeout_s")
            return cls(
                pid=int(pid) if pid is not None else None,
                start=int(start) if start is not None else None,
                boot=str(handle["boot"]) if handle.get("boot") else None,
                rc_file=Path(str(handle["rc_file"])),
                submitted=float(handle.get("submitted") or 0.0),
                timeout_s=float(timeout) if timeout is not None else None,
                key=str(handle["key"]) if handle.get("key") else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def as_json(self) -> Handle:
        return {
            "pid": self.pid,
            "start": self.start,
            "boot": self.boot,
            "rc_file": str(self.rc_file),
            "submitted": round(self.submitted, 3),
            "timeout_s": self.timeout_s,
            "key": self.key,
        }


@dataclass
class _Spare:
    """A wrapper started ahead of its run (see `LocalExecutor.prepare_spare`)."""

    pid: int
    start: int | None
    pipe: int  # the write end: the run's script goes here, then end-of-file


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
            pid, start = self._spawn(
                # The traps first: a run cancelled the moment it is handed over still records
                # how it ended (see runner.WRAPPER).
                ["sh", "-c", "trap : HUP INT QUIT TERM; . /dev/fd/3", runner.WRAPPER_NAME],
                self._environ,
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
        self._spare = _Spare(pid, start, write)

    def _spawn(
        self, argv: list[str], env: Mapping[str, str], file_actions: list[tuple[Any, ...]]
    ) -> tuple[int, int | None]:
        """Start a wrapper: a session of its own, stdin from /dev/null, the signal mask and
        dispositions at their defaults. Returns its pid and start time (clock ticks)."""
        before = _boot_tick()
        pid = os.posix_spawn(
            _SHELL,
            argv,
            env,
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), *file_actions],
            setsid=True,
            setsigmask=(),
            setsigdef=_DEFAULT_SIGNALS,
        )
        if before == _boot_tick() and self._proc == runner.PROC:
            # The kernel stamps a child with the boot clock when it forks it: the spawn began
            # and ended within one tick, so that tick is its start (exactly: see _boot_tick).
            # Reading /proc/<pid>/stat instead waits on the wrapper's exec, 0.1 ms or more.
            return pid, before
        # Race-free: until we reap it, the wrapper's pid cannot be reused.
        found = runner.read_proc(pid, self._proc)
        return pid, found.start if found is not None else None

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
        argv = _argv(sub.command, inline=sub.timeout_s is None)
        workdir = self._workdir(sub)
        timeout_program = self._timeout() if sub.timeout_s is not None else ""
        submitted = time.time()
        if sub.shared_status is not None and sub.timeout_s is None:
            rc_file = Path(os.path.abspath(sub.shared_status))
            key: str | None = f"{status_file(sub).stem}.{int(submitted * 1e6):x}"
            _make_dir(rc_file.parent)
        else:
            rc_file, key = status_file(sub), None
            _clear(rc_file)
        if self._spare is not None and key is not None and argv[0] == runner.INLINE:
            handed = self._hand_over(sub, argv[1], workdir, rc_file, key, submitted)
            if handed is not None:
                return handed
        log_fd = _open_log(sub.log_path)
        try:
            try:
                pid, start = self._spawn(
                    [
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
                    ],
                    {**self._environ, **sub.env},
                    [(os.POSIX_SPAWN_DUP2, log_fd, 1), (os.POSIX_SPAWN_DUP2, log_fd, 2)],
                )
            except OSError as exc:
                retry = exc.errno in (errno.EAGAIN, errno.ENOMEM)
                raise SubmitRefused(
                    f"cannot start {_SHELL}: {exc.strerror}", retryable=retry
                ) from exc
        finally:
            os.close(log_fd)
        handle = _Handle(
            pid=pid,
            start=start,
            boot=self._boot_id() or None,
            rc_file=rc_file,
            submitted=submitted,
            timeout_s=sub.timeout_s,
            key=key,
        )
        return handle.as_json()

    def _hand_over(
        self, sub: Submission, command: str, workdir: Path, rc_file: Path, key: str, at: float
    ) -> Handle | None:
        """Give the spare its run; None if it cannot take it (it is gone: start as usual).

        The `KEY + PID START BOOT` line goes to the status file first, written here: from then
        on `adopt` finds the run (the spare's command line names none). A pass dying before
        the script is written leaves a spare that reads end-of-file and runs nothing, and the
        run is found lost rather than started twice."""
        if any(not _ENV_NAME.fullmatch(n) or n in _SHELL_OWN for n in sub.env):
            return None  # names the shell would take for itself: the spawned wrapper's way
        script = _spare_script(sub, command, workdir, rc_file, key)
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
        handle = _Handle(spare.pid, spare.start, boot, rc_file, at, None, key)
        return handle.as_json()

    def poll(self, handle: Handle, sub: Submission) -> Status:
        h = _Handle.parse(handle)
        if h is None:
            return Lost(f"unusable local handle {handle!r}")
        code, raw = _status_of(h)
        if code is not None:
            self._reap(h)
            return Finished(code, self._detail(h, code))
        proc = self._identify(h)
        if proc is not None and not proc.dead:
            self._escalate_if_due(h)
            return Running(f"pid {h.pid}")
        self._reap(h)
        code, raw = _status_of(h)  # it may have been written since the first look
        if code is not None:
            return Finished(code, self._detail(h, code))
        if raw:
            return Lost(
                f"process {h.pid} vanished leaving an unreadable exit status {raw!r} in {h.rc_file}"
            )
        if h.pid is None:
            return Lost(f"no process and no exit status in {h.rc_file}")
        return Lost(f"process {h.pid} vanished without recording an exit status")

    def cancel(self, handle: Handle, sub: Submission) -> None:
        h = _Handle.parse(handle)
        if h is None or h.pid is None or _status_of(h)[0] is not None:
            return
        proc = self._identify(h)
        if proc is None or proc.dead:
            self._reap(h)
            return
        try:
            fd = os.open(
                _cancel_file(h), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644
            )
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
            key = argv[5] if argv[5].startswith(prefix) else None
            if argv[4] == str(rc_file) or key is not None:
                try:
                    started = runner.boot_time(self._proc) + p.start / os.sysconf("SC_CLK_TCK")
                except OSError:
                    started = time.time()
                h = _Handle(
                    p.pid,
                    p.start,
                    self._boot_id() or None,
                    Path(argv[4]),
                    started,
                    sub.timeout_s,
                    key,
                )
                return h.as_json()
        if _read_status(rc_file)[0] is not None:
            return _Handle(
                None, None, None, rc_file, rc_file.stat().st_mtime, sub.timeout_s
            ).as_json()
        for shared in sorted(rc_file.parent.glob("*.status")):
            lines = _shared_lines(shared)
            for key in reversed(list(lines)):
                if key.startswith(prefix):
                    submitted = int(key.rsplit(".", 1)[1], 16) / 1e6
                    pid, start = self._started_by_spare(lines[key])
                    boot = self._boot_id() or None if pid is not None else None
                    return _Handle(
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

    def _identify(self, h: _Handle) -> runner.Proc | None:
        if h.pid is None:
            return None
        return runner.identify(h.pid, h.start, h.boot, self._proc, current_boot=self._boot_id())

    def _reap(self, h: _Handle) -> None:
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

    def _detail(self, h: _Handle, code: int) -> str:
        if _cancel_file(h).exists():
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

    def _escalate_if_due(self, h: _Handle) -> None:
        """SIGKILL a cancelled run whose grace is over (if the escalation helper did not)."""
        if h.pid is None:
            return
        try:
            since = _cancel_file(h).stat().st_mtime
        except OSError:
            return
        if time.time() - since >= self.kill_grace_s + 1.0:
            runner.kill_members(h.pid, self._proc)

    def _spawn_escalation(self, h: _Handle, members: list[runner.Proc]) -> None:
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


def _argv(command: str | tuple[str, ...], *, inline: bool = False) -> tuple[str, ...]:
    """The command as the wrapper's trailing arguments; `inline`: a string runs in the
    wrapper's own subshell (runner.INLINE) where it can, else under `/bin/sh -c`."""
    if isinstance(command, str):
        if not command.strip():
            raise SubmitRefused("empty command", retryable=False)
        if inline and not _OWN_SHELL.search(command):
            return (runner.INLINE, command)
        return (_SHELL, "-c", command)
    if not command or not command[0]:
        raise SubmitRefused("empty command", retryable=False)
    return tuple(command)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables sh sets for itself (it ignores them in the environment it starts with, but an
# `export` in a script would set them), and the spare script's own.
_SHELL_OWN = frozenset({"IFS", "OPTIND", "PPID", "_talon_r", "_talon_n", "_talon_c", "_talon_s"})


def _spare_script(sub: Submission, command: str, workdir: Path, rc_file: Path, key: str) -> str:
    """What a spare wrapper runs: `runner.WRAPPER`'s work for a shell string without a
    timeout, with the run's environment exported (a spare started before it was known), and
    a `KEY + PID` line first, by which `adopt` finds the run."""
    from shlex import quote

    exports = "".join(f"export {name}={quote(value)}\n" for name, value in sub.env.items())
    # One compound command: sh reads all of it before running any, so a script cut short
    # (its writer killed) is a syntax error and runs nothing.
    return (
        "{ exec 3<&-\n"
        f"{exports}"
        f"_talon_r={quote(str(rc_file))} _talon_n={quote(key)}\n"
        f"exec >>{quote(str(sub.log_path))} 2>&1\n"
        f"cd -- {quote(str(workdir))} && (_talon_c={quote(command)}; unset _talon_r _talon_n\n"
        'set --; eval "unset _talon_c; $_talon_c")\n'
        "_talon_s=$?\n"
        'echo "$_talon_n $_talon_s" >>"$_talon_r"\n'
        "}\n"
    )


def _clear(rc_file: Path) -> None:
    """Make the status directory exist and hold nothing from an earlier attempt of this run."""
    for path in (rc_file, rc_file.with_suffix(".cancel")):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except NotADirectoryError as exc:
            raise SubmitRefused(
                f"status directory {rc_file.parent} is not a directory", retryable=False
            ) from exc
    _make_dir(rc_file.parent)


_DIRS: set[Path] = set()  # status directories known to exist


def _make_dir(directory: Path) -> None:
    if directory in _DIRS:
        return
    if directory.exists() and not directory.is_dir():
        raise SubmitRefused(f"status directory {directory} is not a directory", retryable=False)
    directory.mkdir(parents=True, exist_ok=True)
    _DIRS.add(directory)


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


_STATUS = re.compile(r"(\d{1,3})\n")
_NS_PER_TICK = 10**9 // os.sysconf("SC_CLK_TCK")


def _boot_tick() -> int:
    """The boot clock in the unit of a process's start time in /proc/<pid>/stat (clock ticks):
    the kernel shows a task's start_boottime divided down the same way, so a child forked
    between two equal readings started in that tick."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) // _NS_PER_TICK


def _status_of(h: _Handle) -> tuple[int | None, str]:
    if h.key is None:
        return _read_status(h.rc_file)
    raw = _shared_lines(h.rc_file).get(h.key)
    if raw is None or raw.startswith("+"):  # none yet, or only a spare's "started" line
        return None, ""
    return (int(raw), raw) if raw.isdigit() and len(raw) <= 3 else (None, raw)


# Shared status files as read so far: path -> (identity, first bytes, bytes consumed,
# key -> status text). The first bytes tell a file pruned and made again (which may get the
# same inode number) from the one read before.
_SHARED: dict[Path, tuple[tuple[int, int], bytes, int, dict[str, str]]] = {}


def _shared_lines(path: Path) -> dict[str, str]:
    """The complete lines of a shared status file, by key; only what was appended since the
    last look is read (a line without its newline is still being written: not yet)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        _SHARED.pop(path, None)
        return {}
    try:
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino)
        known = _SHARED.get(path)
        if (
            known is None
            or known[0] != ident
            or known[2] > st.st_size
            or (known[1] and os.pread(fd, len(known[1]), 0) != known[1])
        ):
            known = (ident, b"", 0, {})
        _, head, offset, lines = known
        if st.st_size > offset:
            data = os.pread(fd, st.st_size - offset, offset)
            end = data.rfind(b"\n") + 1
            for line in data[:end].decode("utf-8", "replace").splitlines():
                key, _, status = line.partition(" ")
                if key:
                    lines[key] = status
            if not head:
                head = data[: min(end, 64)]
            offset += end
        _SHARED[path] = (ident, head, offset, lines)
        return lines
    finally:
        os.close(fd)


def prune_status(handle: Handle) -> None:
    """Remove the status files of a run whose outcome is recorded (and durable): its `.rc`
    and `.cancel` files, or, in a shared status file, only its `.cancel` (the shared file is
    its other runs' too: see `prune_shared_status`). Never anything outside a `proc` status
    directory under `.talon`."""
    h = _Handle.parse(handle)
    if h is None or "/.talon/proc/" not in str(h.rc_file):
        return
    for path in (_cancel_file(h), None if h.key is not None else h.rc_file):
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)


def shared_status_name(generation: int = 0) -> str:
    """This process's shared status file name: its pid and start time, so that a later process
    with the same pid never appends to it, and a generation (a long-lived process moves on to
    a new file now and then)."""
    me = runner.read_proc(os.getpid())
    base = f"p{os.getpid()}-{me.start if me is not None else 0}"
    return f"{base}.status" if generation == 0 else f"{base}-{generation}.status"


def prune_shared_status(
    status_dir: Path, named: set[str], current: str | None, *, others: bool = True
) -> list[Path]:
    """Remove the shared status files no open run names (`named`: the rc_file of every open run
    with a key) that no process will append to again: their process is gone, or it is this
    one and the file is not `current` (the one it still starts runs with; None at its end).
    `others`: also the files of other processes. Only a caller that has restored the runs the
    index log holds and adopted every running run without a handle may say so: such a run's
    status is named by nothing yet. Their runs' outcomes must be durable first. Returns what
    was removed."""
    removed: list[Path] = []
    try:
        names = os.listdir(status_dir)
    except FileNotFoundError:
        return removed
    me = _me()
    for name in names:
        owner = _owner(name)
        path = status_dir / name
        if owner is None or str(path) in named:
            continue  # (a name not of this form is not ours to judge)
        if owner == me and name == current:
            continue
        if owner != me and (not others or _owner_alive(owner)):
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        _SHARED.pop(path, None)
        removed.append(path)
    return removed


def _owner(name: str) -> list[str] | None:
    """[pid, start] of the process a shared status file belongs to (`p<pid>-<start>[-gen]`)."""
    m = re.fullmatch(r"p(\d+)-(\d+)(?:-\d+)?\.status", name)
    return [m.group(1), m.group(2)] if m else None


@functools.cache
def _me() -> list[str]:
    owner = _owner(shared_status_name())
    assert owner is not None
    return owner


def _owner_alive(owner: list[str]) -> bool:
    found = runner.read_proc(int(owner[0]))
    return found is not None and not found.dead and found.start == int(owner[1])


def _read_status(rc_file: Path) -> tuple[int | None, str]:
    """(exit status, raw text): the status only when a complete line is there."""
    try:
        with open(rc_file, "rb") as fh:
            raw = fh.read(64).decode("ascii", "replace")
    except (FileNotFoundError, NotADirectoryError):
        return None, ""
    m = _STATUS.fullmatch(raw)
    return (int(m.group(1)), raw) if m else (None, raw)


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
