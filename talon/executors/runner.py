"""The detached run wrapper of the local executors, and what /proc says about it.

A local run must outlive the `talon reconcile` that started it, so the exit status is recorded
by a wrapper, not by Talon. The wrapper is a few lines of POSIX sh (`WRAPPER`) rather than a
Python program because it sits on the hot path of every run: `sh` starts in under a millisecond
here, Python in 7 to 25. Talon starts it with `posix_spawn` in a new session (so it is the
leader of the run's session and process group), stdin from /dev/null and stdout/stderr on the
run's log; the wrapper runs the command as a child, waits, and writes the exit status
(128+N for signal N) as one line to the run's status file, or appends it as `KEY STATUS` to the
status file the runs of one Talon process share (see talon.executors.local). Its pid and start
time (as /proc/<pid>/stat gives it) are the run's handle, so nothing but that line is written
per run.

The wrapper catches HUP, INT, QUIT, TERM, USR1, USR2 and ALRM with an empty trap (`TRAPPED`): a
signal sent to the run's process group stops the command but not the wrapper, which then
records how the command ended, and neither does a program that signals its parent (the
wrapper, for a plain command: see `plain_command`).
(A trap, unlike `trap ''`, is reset to the default in the command, so the command sees the usual
dispositions.) With a timeout the command runs under coreutils `timeout -k GRACE`, which leads a
process group of its own, sends SIGTERM at the deadline, SIGKILL after the grace, and exits 124
when the command stopped on the SIGTERM (137 when it had to be killed). Without a timeout there
is no process in between: one exec per run saved, about 1 ms.

`escalate` is the other half of a cancel: `python -m talon.executors.runner escalate ...` detaches
and, once the grace has passed, SIGKILLs whatever is left of the run except the wrapper, so the
wrapper still records the status. Cancel is rare, so this one may be Python.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

WRAPPER_NAME = "talon-run"  # the wrapper's $0: how `adopt` recognises it in /proc/<pid>/cmdline

# Positional parameters: $1 status file, $2 the run's key in it when it is shared by several
# runs (a line "KEY STATUS" is appended), or empty when it is the run's own (the status alone),
# $3 working directory, $4 the `timeout` program or empty for no timeout, $5 the timeout, $6
# the grace before SIGKILL, then the command: its argv, or (INLINE, STRING) for a shell
# command string run without a timeout, (INLINE, STRING, PLAIN) when that string is plain.
# `cd` failing leaves its own status (2) and message in the log; so does exec failing (126, 127).
#
# A command string runs in a subshell of the wrapper rather than in a `/bin/sh -c` it would
# start: a fork instead of an exec, 0.8 ms and half the CPU of a run of `true` here. The
# subshell is made to look like `sh -c STRING`: the wrapper's variables unset, no positional
# parameters, and the wrapper's traps back to the defaults (as POSIX resets caught traps in a
# subshell). `$0` differs (the wrapper's name, so also in the shell's error messages), and so
# would `$$` and `$PPID`: commands using those run under `sh -c` (local._argv). A plain
# command (one program and plain words, `plain_command`) needs none of that and skips the
# subshell: the wrapper forks and executes the program itself, as `sh -c` would.
INLINE = ""  # as argv[0]: never a program (an empty program is refused before)
# As a third argument after (INLINE, STRING): the string is plain (`plain_command`) and runs in
# the wrapper itself, without the subshell's fork (0.1 to 0.2 ms of CPU a run here).
PLAIN = "plain"
TRAPPED = "HUP INT QUIT TERM USR1 USR2 ALRM"  # the wrapper's (see WRAPPER)
# The line a run appends to a shared status file, `KEY STATUS UPTIME` (talon.executors.
# status_files reads it), from $_talon_n, $_talon_s and $_talon_r; the spare script's too.
RECORD_SHARED = (
    "read -r _talon_e _talon_f </proc/uptime || _talon_e=\n"
    'echo "$_talon_n $_talon_s $_talon_e" >>"$_talon_r"'
)
WRAPPER = f"""_talon_r=$1 _talon_n=$2 _talon_d=$3 _talon_x=$4 _talon_t=$5 _talon_k=$6
shift 6
trap : {TRAPPED}
cd -- "$_talon_d" && if [ -n "$_talon_x" ]; then "$_talon_x" -k "$_talon_k" "$_talon_t" "$@"
elif [ -n "$1" ]; then "$@"
elif [ $# = 3 ]; then eval "$2"
else (_talon_c=$2; unset _talon_r _talon_n _talon_d _talon_x _talon_t _talon_k
set --; eval "unset _talon_c; $_talon_c"); fi
_talon_s=$?
if [ -n "$_talon_n" ]; then {RECORD_SHARED}
else echo $_talon_s >"$_talon_r"; fi
"""
# (Prefixed names: a job's environment may well hold `r` or `c`, which plain names would
# overwrite in the command's environment.)

# A word of a plain command: unquoted characters that no shell expands or treats as an
# operator, and single-quoted strings (how placeholders quote values).
_PLAIN_WORD = r"(?:[A-Za-z0-9_./:,=+%@-]|'[^']*')+"
_PLAIN = re.compile(rf"[ \t]*([A-Za-z0-9_./+-]+)(?:[ \t]+{_PLAIN_WORD})*[ \t]*")
# Names that are shell builtins or reserved words in dash or bash (either may be /bin/sh), but
# for echo, pwd, true and false: run in the wrapper, the others could change it (exit, exec,
# set, trap, cd, read, wait, bash's `printf -v`, ...) or see its variables (`test -v`), where
# `sh -c` would have run them in a shell of their own.
_SHELL_WORDS = frozenset(
    re.findall(
        r"\S+",
        """. : [ [[ ]] ! { } alias bg bind break builtin caller case cd chdir command compgen
        complete compopt continue coproc declare dirs disown do done elif else enable esac eval
        exec exit export fc fg fi for function getopts hash help history if in jobs kill let
        local logout mapfile popd pushd read readarray readonly return select set shift shopt
        source suspend then time times trap type typeset ulimit umask unalias unset until wait
        while printf test""",
    )
)


def plain_command(command: str) -> bool:
    """Whether the wrapper may run the shell string `command` with a plain `eval` instead of in
    a subshell: one simple command of plain words, its first a program name or path that is not
    a shell builtin or reserved word (echo, pwd, true and false are allowed).

    Such a command runs as under `sh -c`: a program is forked and executed with the signals at
    their defaults (the wrapper's traps are reset by the exec), and a builtin of those allowed
    cannot loop, exit, change the wrapper or read its variables. There is nothing to expand, so
    neither the wrapper's variables nor its positional parameters can show (the caller keeps
    the subshell when the environment holds names of the wrapper's, `_talon_*`). One thing
    differs: the program's parent is the wrapper, which ignores the signals in `TRAPPED`, where
    it was a subshell that died of them (and under cron's `sh -c prog`, cron itself). Anything
    else (a `$`, a pipe, `;`, `&&`, a redirection, a glob, a newline, double quotes) keeps the
    subshell."""
    match = _PLAIN.fullmatch(command)
    return match is not None and match.group(1) not in _SHELL_WORDS


PROC = Path("/proc")
_NS_PER_TICK = 10**9 // os.sysconf("SC_CLK_TCK")


def boot_tick() -> int:
    """The boot clock in the unit of a process's start time in /proc/<pid>/stat (clock ticks):
    the kernel shows a task's start_boottime divided down the same way, so a child forked
    between two equal readings started in that tick (how a spawn learns its child's start
    without reading /proc, which waits on the child's exec: 0.1 ms or more)."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) // _NS_PER_TICK


@dataclass(frozen=True)
class Proc:
    """The fields of /proc/<pid>/stat Talon needs; `start` is in clock ticks since boot."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    start: int

    @property
    def dead(self) -> bool:
        return self.state in ("Z", "X", "x")


def read_proc(pid: int, proc: Path = PROC) -> Proc | None:
    """The process `pid` as /proc shows it, or None when there is no such process."""
    try:
        with open(proc / str(pid) / "stat", "rb") as fh:
            data = fh.read()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return Proc(
        pid=pid,
        state=fields[0].decode(),
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        start=int(fields[19]),
    )


def processes(proc: Path = PROC) -> Iterator[Proc]:
    """Every process visible in /proc (a snapshot that is stale as soon as it is taken)."""
    for name in os.listdir(proc):
        if name.isdigit():
            found = read_proc(int(name), proc)
            if found is not None:
                yield found


def cmdline(pid: int, proc: Path = PROC) -> list[str]:
    """The argv of `pid` ([] when it is gone or a kernel thread)."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(arg) for arg in raw.split(b"\0")[:-1]]


def boot_id(proc: Path = PROC) -> str:
    """This boot's identity: a (pid, start time) pair only means something within one boot."""
    try:
        return (proc / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def boot_time(proc: Path = PROC) -> float:
    """The epoch time of the boot (`btime` in /proc/stat), to turn start ticks into a time."""
    with open(proc / "stat") as fh:
        for line in fh:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def identify(
    pid: int,
    start: int | None,
    boot: str | None,
    proc: Path = PROC,
    current_boot: str | None = None,
) -> Proc | None:
    """The process `pid` if it is still the one that started at `start` in boot `boot`."""
    if boot and boot != (current_boot if current_boot is not None else boot_id(proc)):
        return None  # the machine rebooted: whatever has this pid now is not ours
    found = read_proc(pid, proc)
    if found is None:
        if start is None and not proc.is_dir():  # no /proc: all we can ask is whether pid exists
            return _exists(pid)
        return None
    if start is not None and found.start != start:
        return None  # the pid was reused
    return found


def _exists(pid: int) -> Proc | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return Proc(pid, "?", 0, pid, pid, 0)


def run_members(leader: int, proc: Path = PROC) -> list[Proc]:
    """The live processes of the run whose wrapper is `leader`, wrapper excluded.

    The wrapper leads its own session, and everything the command starts stays in that session
    unless it calls setsid() itself (daemons do; they have left the run on purpose).
    """
    return [p for p in processes(proc) if p.session == leader and p.pid != leader and not p.dead]


def kill_leftovers(leader: int, run_id: str, proc: Path = PROC, spare: str | None = None) -> int:
    """SIGKILL what is left of a run whose wrapper is gone: the processes of its session that
    carry its TALON_RUN_ID, or the mark of the spare wrapper that ran it (a session id alone
    could be a reused pid's). Returns how many.

    The run is about to be recorded lost and its resources given to others; what it left
    running would go on holding them unaccounted. (A process that cleared its environment
    or left the session is not found: it has left the run on purpose.)"""
    marks = {f"TALON_RUN_ID={run_id}".encode()}
    if spare is not None:
        marks.add(f"_TALON_SPARE={spare}".encode())
    killed = 0
    for p in processes(proc):
        if p.session != leader or p.dead:
            continue
        try:
            environ = (proc / str(p.pid) / "environ").read_bytes()
        except OSError:
            continue
        if marks.intersection(environ.split(b"\0")):
            killed += _signal(p.pid, signal.SIGKILL)
    return killed


def terminate(leader: int, *, timeout_program: bool, proc: Path = PROC) -> None:
    """Send SIGTERM to the run once: its process group, and each process group in its session.

    With a timeout the command runs under `timeout` in a group of its own: `timeout` gets the
    signal alone and forwards it (and arms its SIGKILL), so the command is not signalled twice.
    """
    _signal_group(leader, signal.SIGTERM)
    members = run_members(leader, proc)
    leaders = {p.pid: p for p in members if p.pid == p.pgrp}
    for pgrp in sorted({p.pgrp for p in members} - {leader}):
        head = leaders.get(pgrp)
        if timeout_program and head is not None and head.ppid == leader:
            _signal(pgrp, signal.SIGTERM)
        else:
            _signal_group(pgrp, signal.SIGTERM)


def kill_members(
    leader: int,
    proc: Path = PROC,
    rounds: int = 20,
    members_of: Callable[[int, Path], list[Proc]] = run_members,
) -> int:
    """SIGKILL every process of the run but the wrapper; repeat while new ones appear."""
    killed = 0
    for _ in range(rounds):
        members = members_of(leader, proc)
        if not members:
            break
        for p in members:
            killed += _signal(p.pid, signal.SIGKILL)
        time.sleep(0.01)
    return killed


def escalate(
    pid: int,
    start: int | None,
    boot: str | None,
    grace_s: float,
    proc: Path = PROC,
    known: dict[int, int] | None = None,
) -> None:
    """Wait up to `grace_s` for the run to stop after SIGTERM, then SIGKILL what is left of it.

    Leaves early when nothing of the run is left. "The run" is the wrapper's session, followed
    by identity (pid and start time) from the moment a process is seen in it: a shell between
    the wrapper and the command may die of the SIGTERM while the command ignores it, and the
    wrapper then records the status and exits; the command is still in the session and must
    not be left running. Once the wrapper is gone only processes seen before count, and their
    children (the kernel keeps a session's number from being reused while any member lives,
    but a new session could take it after).
    """
    deadline = time.monotonic() + grace_s
    seen: dict[int, int] = dict(known or {})  # the members when the SIGTERM was sent

    def left_of_run(leader: int, proc: Path) -> list[Proc]:
        return _left_of_run(leader, start, boot, proc, seen)

    while left_of_run(pid, proc):
        left = deadline - time.monotonic()
        if left <= 0:
            kill_members(pid, proc, members_of=left_of_run)
            return
        time.sleep(min(0.1, left))


def _left_of_run(
    pid: int, start: int | None, boot: str | None, proc: Path, seen: dict[int, int]
) -> list[Proc]:
    members = run_members(pid, proc)
    if identify(pid, start, boot, proc) is None:
        members = [p for p in members if seen.get(p.pid) == p.start or p.ppid in seen]
    for p in members:
        seen[p.pid] = p.start
    return members


def _signal(pid: int, sig: int) -> int:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return 0
    return 1


def _signal_group(pgrp: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgrp, sig)


def _opt_int(text: str) -> int | None:
    return None if text in ("", "-") else int(text)


def members_arg(members: Sequence[Proc]) -> str:
    """Processes as `pid:start,...`, for `escalate`'s last argument."""
    return ",".join(f"{p.pid}:{p.start}" for p in members) or "-"


def main(argv: Sequence[str]) -> int:
    """`escalate PID START BOOT GRACE [MEMBERS]`: detach, then `escalate`. Exits at once (no
    zombie). MEMBERS: the run's processes when it was signalled, as `pid:start,...`."""
    if len(argv) not in (5, 6) or argv[0] != "escalate":
        print(
            "usage: python -m talon.executors.runner escalate PID START BOOT GRACE [MEMBERS]",
            file=sys.stderr,
        )
        return 2
    pid, start, boot, grace = int(argv[1]), _opt_int(argv[2]), argv[3], float(argv[4])
    known: dict[int, int] = {}
    for item in (argv[5] if len(argv) == 6 else "-").split(","):
        if ":" in item:
            member, _, ticks = item.partition(":")
            known[int(member)] = int(ticks)
    if os.fork():
        return 0  # the parent returns at once, so whoever started us can reap us at once
    try:
        escalate(pid, start, boot if boot != "-" else None, grace, known=known)
    finally:
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
