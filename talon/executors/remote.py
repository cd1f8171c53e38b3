"""The run wrapper shared by the ssh, sge and slurm executors (Tron's action runner, in POSIX sh).

A run started on another host or by a cluster scheduler must outlive the `talon reconcile` that
started it, and a later pass must be able to tell how it ended. The wrapper makes that possible
with a few small files in the run's *state directory*:

    pid        the wrapper's pid, written first. The ssh executor starts the wrapper with
               `setsid`, so this is also the process group of the run: cancel signals the group.
    out        the command's combined stdout and stderr (ssh; the cluster executors let the
               scheduler write the output to the log instead)
    rc         the command's exit status (128+N for signal N), written atomically when it ends
    timed_out  present when the watchdog stopped the command for exceeding timeout_s
    cancelled  present when Talon cancelled the run
    job_id     the cluster job id, when a scheduler started the wrapper

Exit statuses the wrapper makes up itself:

    124  the run timed out and stopped on SIGTERM (the watchdog then had to SIGKILL the whole
         group, wrapper included, if it ignored SIGTERM for `kill_grace_s`: the scheduler then
         reports 137 and `timed_out` tells why)
    125  the wrapper could not start the command (e.g. the working directory is missing)

The command is never re-split: an argv tuple is shell-quoted word by word, a string command is
handed to `/bin/sh -c` as one quoted word, and every environment value is exported quoted.
"""

from __future__ import annotations

import contextlib
import math
import re
import shlex
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from talon.executors.base import Handle, Lost, Running, Status, Submission, SubmitRefused

EXIT_TIMED_OUT = 124
EXIT_NOT_STARTED = 125
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# The wrapper's last line: a copy sent over a connection that dropped midway lacks it, and is
# not started (ssh's start script checks).
WRAPPER_END = "# talon: end of the wrapper"


def command_line(command: str | tuple[str, ...]) -> str:
    """The command as one line of POSIX sh, each argument arriving literally (newlines as
    `"$_talon_nl"`: see `_one_line`)."""
    if isinstance(command, str):
        return "/bin/sh -c " + _one_line(command)
    if not command:
        raise ValueError("empty argv")
    return " ".join(_one_line(arg) for arg in command)


def wrapper_script(
    command: str | tuple[str, ...],
    *,
    state_dir: str,
    env: Mapping[str, str],
    workdir: str | None,
    timeout_s: float | None,
    output: str | None,
    kill_grace_s: float = 10,
    label: str = "",
    job_id_var: str | None = None,
    remove_self: bool = False,
) -> str:
    """The wrapper script text. `output` is a file for the command's output, or None to inherit
    the wrapper's stdout (a cluster scheduler's `-o` file). Paths are taken literally (no `~`).
    `job_id_var` names the variable in which a scheduler passes the job id (JOB_ID for Grid
    Engine, SLURM_JOB_ID for Slurm): the wrapper records it in `job_id`. With `remove_self` the
    wrapper deletes its own file once the shell has it open: the file exports the environment,
    secrets too, and the shell goes on reading the open file."""
    # Every value on one line of the script (newlines as variables): Grid Engine reads `#$`
    # lines anywhere in a script as qsub options, quoted or not, and a parameter or variable
    # `x<newline>#$ -v INJECTED=yes` would give the job options of its own.
    q = _one_line
    d = q(state_dir)
    safe_label = re.sub(r"[^A-Za-z0-9._:@+=,-]", "_", label)
    lines = [
        "#!/bin/sh",
        f"# Talon run wrapper {safe_label}: pid and exit status go to $d",
        "_talon_nl=$(printf '\\n_'); _talon_nl=${_talon_nl%_}; _talon_cr=$(printf '\\r')",
        f"d={d}",
        # cancel and the watchdog signal the wrapper's process group: make sure it is ours alone
        # (ssh starts the wrapper with setsid; Grid Engine and Slurm give a job script its own)
        'if [ -r /proc/$$/stat ] && [ "$(cut -d" " -f5 /proc/$$/stat)" != $$ ]; then',
        '  exec setsid /bin/sh "$0" "$@"',
        "fi",
        *(['rm -f "$0"'] if remove_self else []),
        'echo $$ > "$d/pid.tmp" 2>/dev/null && mv -f "$d/pid.tmp" "$d/pid"',
        *(
            [f'echo "${{{job_id_var}:-}}" > "$d/job_id" 2>/dev/null']
            if job_id_var and _ENV_NAME.fullmatch(job_id_var)
            else []
        ),
        # survive the TERM that cancel and the watchdog send to the whole group, to record rc
        "trap 'sig=1' TERM INT HUP",
    ]
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"not a valid environment variable name: {name!r}")
        lines.append(f"export {name}={q(value)}")
    redirect = f"> {q(output)} 2>&1" if output is not None else "2>&1"
    say = f">> {q(output)}" if output is not None else ""
    lines.append("rc=")
    if workdir is not None:
        complaint = q(f"talon: cannot change to directory {workdir}")
        lines.append(
            f"cd {q(workdir)} 2>/dev/null || {{ echo {complaint} {say}; rc={EXIT_NOT_STARTED}; }}"
        )
    if timeout_s is not None:
        seconds = max(1, math.ceil(timeout_s))
        grace = max(1, math.ceil(kill_grace_s))
        # The watchdog polls once a second so that it never outlives the wrapper by more than
        # that; it ignores TERM itself because it signals its own process group.
        lines += [
            "(",
            "  exec </dev/null >/dev/null 2>&1",
            "  trap '' TERM INT HUP",
            f"  end=$(( $(date +%s) + {seconds} ))",
            '  while [ "$(date +%s)" -lt "$end" ]; do sleep 1; [ -e "$d/rc" ] && exit 0; done',
            '  : > "$d/timed_out"',
            "  kill -TERM 0",
            f"  sleep {grace}",
            '  [ -e "$d/rc" ] || kill -KILL 0',
            ") &",
            "w=$!",
        ]
    lines += [
        '[ -e "$d/cancelled" ] && rc=143',
        f'[ -z "$rc" ] && {{ {command_line(command)} {redirect} < /dev/null; rc=$?; }}',
    ]
    if timeout_s is not None:
        lines += [
            'kill -KILL "$w" 2>/dev/null',
            f'if [ -e "$d/timed_out" ]; then rc={EXIT_TIMED_OUT}; '
            f"echo 'talon: timed out after {math.ceil(timeout_s)}s' {say}; fi",
        ]
    lines += [
        'echo "$rc" > "$d/rc.tmp" 2>/dev/null && mv -f "$d/rc.tmp" "$d/rc"',
        'exit "$rc"',
        WRAPPER_END,
    ]
    if any(line.startswith(("#$", "#SBATCH")) for line in lines[1:]):
        raise ValueError("a job script line would read as a scheduler option")  # (never)
    return "\n".join(lines) + "\n"


def _one_line(value: str) -> str:
    """`value` shell-quoted on one line: its newlines and carriage returns as variables."""
    parts = []
    for i, line in enumerate(value.split("\n")):
        if i:
            parts.append('"$_talon_nl"')
        for j, piece in enumerate(line.split("\r")):
            if j:
                parts.append('"$_talon_cr"')
            if piece:
                parts.append(shlex.quote(piece))
    return "".join(parts) or "''"


def job_script(
    sub: Submission, state_dir: Path, *, workdir: str, kill_grace_s: float, job_id_var: str
) -> str:
    """For the cluster executors: create the log directory (Grid Engine leaves a job whose -o
    directory is missing in Eqw), clear status files of an earlier submission from the run's
    state directory, and return the wrapper's text.

    The text is handed to qsub or sbatch on stdin, never written to a file: it exports the run's
    environment, secrets too, and the state directory is inside the repository. Both schedulers
    copy a script to their own spool at submission and run the copy (its path is `$0`)."""
    sub.log_path.parent.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    # (job.sh: the script as an earlier Talon wrote it, secrets included)
    for stale in ("pid", "rc", "job_id", "timed_out", "cancelled", "job.sh"):
        (state_dir / stale).unlink(missing_ok=True)
    for since in state_dir.glob("*-since"):
        since.unlink(missing_ok=True)
    return wrapper_script(
        sub.command,
        state_dir=str(state_dir.resolve()),
        env=sub.env,
        workdir=workdir,
        timeout_s=sub.timeout_s,
        output=None,
        kill_grace_s=kill_grace_s,
        label=sub.run_id,
        job_id_var=job_id_var,
    )


# sh: is the wrapper recorded in "$d/pid" alive? A zombie counts as dead (PID 1 may reap late)
# and, where /proc exists, a pid whose command line does not name the run directory is a reused
# pid, not our wrapper - never signal it.
_WRAPPER_ALIVE = """wrapper_alive() {
  p=$(cat "$d/pid" 2>/dev/null)
  [ -n "$p" ] || return 1
  if [ -d /proc/self ]; then
    [ -r "/proc/$p/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null \\
      && tr '\\000' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$d"
  else
    kill -0 "$p" 2>/dev/null
  fi
}
"""


def status_script(state_dir: str) -> str:
    """A sh snippet printing `key=value` lines about a run (see `parse_status`).

    Liveness is checked before the exit status: the wrapper writes rc before it exits, so a dead
    wrapper without rc really ended without recording one.
    """
    d = shlex.quote(state_dir)
    return f"""d={d}
{_WRAPPER_ALIVE}
alive=0
wrapper_alive && alive=1
echo "dir=$([ -d "$d" ] && echo 1 || echo 0)"
echo "pid=$p"
echo "alive=$alive"
echo "rc=$(cat "$d/rc" 2>/dev/null)"
[ -e "$d/timed_out" ] && echo timed_out=1
[ -e "$d/cancelled" ] && echo cancelled=1
echo "out_size=$(wc -c < "$d/out" 2>/dev/null || echo 0)"
"""


def cancel_script(state_dir: str, kill_grace_s: float) -> str:
    """A sh snippet that cancels the run: marks it, SIGTERMs its process group, waits up to
    kill_grace_s for the wrapper to record the exit status, then SIGKILLs the group."""
    d = shlex.quote(state_dir)
    ticks = max(1, math.ceil(kill_grace_s * 10))
    return f"""d={d}
[ -d "$d" ] || exit 0
: > "$d/cancelled"
[ -e "$d/rc" ] && exit 0
{_WRAPPER_ALIVE}
wrapper_alive || exit 0
kill -TERM -"$p" 2>/dev/null || exit 0
i=0
while [ ! -e "$d/rc" ] && [ "$i" -lt {ticks} ]; do sleep 0.1; i=$((i + 1)); done
[ -e "$d/rc" ] || kill -KILL -"$p" 2>/dev/null
exit 0
"""


@dataclass(frozen=True)
class RunStatus:
    """What the state directory says about a run."""

    exists: bool
    pid: int | None
    alive: bool
    exit_code: int | None
    timed_out: bool
    cancelled: bool
    out_size: int = 0
    job_id: str | None = None


def parse_status(text: str) -> RunStatus:
    """Parse the output of `status_script`."""
    kv: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep:
            kv[key] = value.strip()
    return RunStatus(
        exists=kv.get("dir") == "1",
        pid=_int_or_none(kv.get("pid")),
        alive=kv.get("alive") == "1",
        exit_code=_int_or_none(kv.get("rc")),
        timed_out=kv.get("timed_out") == "1",
        cancelled=kv.get("cancelled") == "1",
        out_size=_int_or_none(kv.get("out_size")) or 0,
    )


def read_local_status(state_dir: Path) -> RunStatus:
    """The same facts read directly, for a state directory on a filesystem this process sees
    (the cluster executors' status_dir). Liveness is not known here: the scheduler says it."""
    return RunStatus(
        exists=state_dir.is_dir(),
        pid=_int_or_none(_read(state_dir / "pid")),
        alive=False,
        exit_code=_int_or_none(_read(state_dir / "rc")),
        timed_out=(state_dir / "timed_out").exists(),
        cancelled=(state_dir / "cancelled").exists(),
        job_id=(_read(state_dir / "job_id") or "").strip() or None,
    )


def describe_exit(exit_code: int, *, timed_out: bool = False, cancelled: bool = False) -> str:
    """A short human reason for an exit status, e.g. "killed by signal 9 (SIGKILL)"."""
    if cancelled:
        return "cancelled"
    if timed_out:
        return "timed out" + ("" if exit_code == EXIT_TIMED_OUT else f" (exit {exit_code})")
    if exit_code == 0:
        return "succeeded"
    if exit_code > 128:
        num = exit_code - 128
        try:
            name = f" ({signal.Signals(num).name})"
        except ValueError:
            name = ""
        return f"killed by signal {num}{name}"
    return f"exit status {exit_code}"


def seconds(value: object, default: float) -> float:
    """A duration from executor configuration: a number of seconds or "30s", "5m", "2h"."""
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", value)
        if m:
            return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    raise ValueError(f"not a duration: {value!r} (a number of seconds, or e.g. 30s, 5m, 2h)")


def arg_list(value: object) -> list[str]:
    """Extra command-line arguments from configuration: a list, or one string split like a
    shell would split it."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list | tuple):
        return [str(a) for a in value]
    raise ValueError(f"expected a list of arguments or a string, got {value!r}")


def safe_name(text: str) -> str:
    """`text` with everything but letters, digits and `._+=,-` replaced by `_`: usable as a file
    name and as a Grid Engine or Slurm job name (which reject `/ : @ \\ * ?` and whitespace)."""
    return re.sub(r"[^A-Za-z0-9._+=,-]", "_", text)


def job_name(run_id: str) -> str:
    """The cluster job name of a run, `talon-<run id>`, so a job can be found again by it."""
    return "talon-" + safe_name(run_id)


def run_state_dir(sub: Submission, kind: str) -> Path:
    """This run's own directory inside `sub.status_dir`, which all runs share."""
    return sub.status_dir / f"{kind}-{safe_name(sub.run_id)}"


def record_job_id(state_dir: Path, job_id: str) -> None:
    """Note a cluster job id beside the run right after submitting it, so that adopt() finds it
    even when the pass dies before its handle is recorded and the scheduler is slow to answer."""
    tmp = state_dir / "job_id.tmp"
    tmp.write_text(job_id + "\n", encoding="utf-8")
    tmp.replace(state_dir / "job_id")


class Since:
    """A timestamp file in a local status directory: "since when has X been true".

    The executors keep no state between calls except the handle, and the handle is written by the
    caller; the status directory carries the few facts a later pass needs to measure a grace period
    (host unreachable since, job missing from the queue since).
    """

    def __init__(self, status_dir: Path, name: str) -> None:
        self.path = status_dir / name

    def mark(self, now: datetime) -> datetime:
        """Record `now` unless a time is recorded already; return the recorded time."""
        try:
            return datetime.fromisoformat(self.path.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            pass
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(now.isoformat(timespec="seconds") + "\n", encoding="utf-8")
        tmp.replace(self.path)
        return now

    def clear(self) -> None:
        """Forget the time; the directory goes too if nothing else is in it."""
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


class RemoteSettings:
    """The settings every executor that runs the wrapper elsewhere (ssh, sge, slurm) reads."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self._now = now
        self.command_timeout = seconds(config.get("command_timeout"), 30)
        self.kill_grace = seconds(config.get("kill_grace"), 10)


class BatchSettings(RemoteSettings):
    """Also what a batch system (sge, slurm) needs: the wrapper script of a run."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(config, now=now)
        self.accounting_grace = seconds(config.get("accounting_grace"), 60)

    def gone_from_queue(self, missing: Since, waiting: str, lost: str) -> Status:
        """A job neither queued nor accounted for yet: running (accounting lags) until
        `accounting_grace` after it was first missed, then lost. `{waited}` in the two
        texts is the seconds since."""
        first = missing.mark(self._now())
        waited = (self._now() - first).total_seconds()
        if waited < self.accounting_grace:
            return Running(detail=waiting.format(waited=f"{waited:.0f}"))
        return Lost(lost.format(waited=f"{waited:.0f}"))

    @staticmethod
    def mark_cancelled(sub: Submission, kind: str) -> None:
        """Tell a later poll the run ended because it was cancelled (the wrapper cannot)."""
        state = run_state_dir(sub, kind)
        state.mkdir(parents=True, exist_ok=True)
        (state / "cancelled").touch()

    def prepare(self, sub: Submission, kind: str, job_id_var: str) -> tuple[str, str, Path, str]:
        """(job name, working directory, run state directory, job script text) for a
        submission."""
        workdir = str(sub.workdir or Path.cwd())
        state = run_state_dir(sub, kind)
        script = job_script(
            sub, state, workdir=workdir, kill_grace_s=self.kill_grace, job_id_var=job_id_var
        )
        return job_name(sub.run_id), workdir, state, script


def submit_batch(
    run: Callable[[list[str], str], subprocess.CompletedProcess[str]],
    argv: list[str],
    script: str,
    *,
    parse_id: Callable[[str], str],
    transient: tuple[str, ...],
    state: Path,
    name: str,
) -> Handle:
    """Run the submit command (qsub, sbatch) with the job script on its stdin and turn its
    answer into a handle, or refuse: retryably when the scheduler is only unreachable or slow."""
    tool = argv[0]
    try:
        out = run(argv, script)
    except FileNotFoundError as e:
        raise SubmitRefused(f"{tool} is not installed here: {e}", retryable=False) from e
    except subprocess.TimeoutExpired as e:
        raise SubmitRefused(f"{tool} did not answer in {e.timeout}s", retryable=True) from e
    job_id = parse_id(out.stdout.strip())
    if out.returncode != 0 or not job_id.isdigit():
        err = (out.stderr or out.stdout).strip()
        retryable = any(t in err.lower() for t in transient)
        raise SubmitRefused(f"{tool} refused the job: {err}", retryable=retryable)
    record_job_id(state, job_id)
    return {"job_id": job_id, "name": name}
