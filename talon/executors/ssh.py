"""The `ssh` executor: runs a command on another host through fabric, detached.

Configuration (the executor's mapping in talon.yaml):

    host             the host; else the allocated resource's `address` (sub.resources[0])
    port             22
    user             the local user name
    key_file         a private key; without it the agent and ~/.ssh/id_* are tried
    known_hosts      the known_hosts file to verify host keys against; without it,
                     ~/.ssh/known_hosts. The system default is never read when one is given.
    connect_timeout  seconds (or "10s") for TCP connect, banner, authentication and channel
                     opening; default 10
    command_timeout  seconds for each short control command (start, status, copy); default 30
    kill_grace       seconds between SIGTERM and SIGKILL on cancel and timeout; default 10
    workdir          the command's working directory on the host (default: the login
                     directory), and the base of the run directories
                     (`<workdir or ~>/.talon/runs/<run id>/`). The submission's own workdir
                     is a local path (the repository) and is not used on the host.

Host keys are verified: an unknown or a changed key refuses the run (not retryable) with the
host and the key's fingerprint in the reason, and nothing is run. An unreachable host refuses it
retryably. The command runs under the wrapper of `talon.executors.remote`, started with `setsid`,
so it survives the connection; every poll reads its status files over a new connection and copies
the new part of its output to `sub.log_path`.

Handle: {"host", "port", "user", "dir", "pid", "started"} - the remote run directory and the
wrapper's pid (which is also the run's process group).

Poll: Finished when the wrapper recorded an exit status; Running while the wrapper lives; Lost
when it is gone without one (killed behind Talon's back, host rebooted). An unreachable host is
Running(detail="host ... unreachable since ...") - the caller decides, with its lease, when that
becomes lost; the run is settled from its status files if the host comes back.
"""

from __future__ import annotations

import getpass
import shlex
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from talon.executors.base import Finished, Handle, Lost, Running, Status, Submission, SubmitRefused
from talon.executors.remote import (
    EXIT_NOT_STARTED,
    WRAPPER_END,
    RemoteSettings,
    RunStatus,
    Since,
    cancel_script,
    describe_exit,
    parse_status,
    run_state_dir,
    safe_name,
    seconds,
    status_script,
    wrapper_script,
)

_UNREACHABLE_SINCE = "ssh-unreachable-since"


class Refused(Exception):
    """The host's key is unknown or changed, or our credentials were rejected: retrying the
    same thing will not help."""


class Unreachable(Exception):
    """The host could not be reached or did not answer in time."""


class SshExecutor(RemoteSettings):
    """Runs each command detached on a host over SSH (see the module docstring)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(config, now=now)
        self.port = int(config.get("port", 22))
        self.user = str(config.get("user") or getpass.getuser())
        self.key_file = _path(config.get("key_file"))
        self.known_hosts = _path(config.get("known_hosts"))
        self.connect_timeout = seconds(config.get("connect_timeout"), 10)

    # -- the Executor protocol

    def submit(self, sub: Submission) -> Handle:
        host = self._host(sub)
        workdir = self._workdir(sub)
        try:
            with self._connection(host, self.port) as conn:
                base = self._base_dir(conn, workdir)
                run_dir = f"{base}/{safe_name(sub.run_id)}"
                script = wrapper_script(
                    sub.command,
                    state_dir=run_dir,
                    env=sub.env,
                    # the workdir as the host resolved it (a leading ~ expanded)
                    workdir=base.removesuffix("/.talon/runs") if workdir else None,
                    timeout_s=sub.timeout_s,
                    output=f"{run_dir}/out",
                    kill_grace_s=self.kill_grace,
                    label=sub.run_id,
                    remove_self=True,
                )
                # on stdin: a command line is in the host's `ps` for every user to read
                out = self._run_fed(conn, _start_script(run_dir), script)
        except Refused as e:
            raise SubmitRefused(str(e), retryable=False) from e
        except Unreachable as e:
            raise SubmitRefused(f"{self._where(host)} unreachable: {e}", retryable=True) from e
        fields = _key_values(out)
        pid = fields.get("pid", "")
        if not pid.isdigit():
            raise SubmitRefused(
                f"the run wrapper did not start on {self._where(host)}: {out.strip()[-300:]}",
                retryable=True,
            )
        return {
            "host": host,
            "port": self.port,
            "user": self.user,
            "dir": run_dir,
            "pid": int(pid),
            "started": self._now().isoformat(timespec="seconds"),
        }

    def poll(self, handle: Handle, sub: Submission) -> Status:
        host, port, run_dir = str(handle["host"]), int(handle["port"]), str(handle["dir"])
        since = Since(run_state_dir(sub, "ssh"), _UNREACHABLE_SINCE)
        try:
            with self._connection(host, port, user=handle.get("user")) as conn:
                status = parse_status(self._run(conn, status_script(run_dir)))
                if status.exists:
                    self._sync_log(conn, f"{run_dir}/out", status.out_size, sub.log_path)
        except (Unreachable, Refused) as e:
            first_at = since.mark(self._now())
            first = first_at.isoformat(timespec="seconds")
            what = "unreachable" if isinstance(e, Unreachable) else "refusing us"
            return Running(
                detail=f"host {host} {what} since {first}: {e}", unreachable_since=first_at
            )
        since.clear()
        return _settle(status, f"{self._where(host, port)}:{run_dir}")

    def cancel(self, handle: Handle, sub: Submission) -> None:
        """Stop the run (SIGTERM to its process group, SIGKILL after kill_grace); idempotent.
        Raises ConnectionError when the host cannot be reached: the run may still be alive."""
        host, port, run_dir = str(handle["host"]), int(handle["port"]), str(handle["dir"])
        try:
            with self._connection(host, port, user=handle.get("user")) as conn:
                self._run(
                    conn,
                    cancel_script(run_dir, self.kill_grace),
                    timeout=self.command_timeout + self.kill_grace,
                )
        except (Unreachable, Refused) as e:
            raise ConnectionError(f"cannot cancel on {self._where(host, port)}: {e}") from e

    def adopt(self, sub: Submission) -> Handle | None:
        """A run directory for this run id that already has a pid (a pass died between starting
        the run and recording its handle). None when there is none or the host is unreachable."""
        try:
            host = self._host(sub)
            with self._connection(host, self.port) as conn:
                base = self._base_dir(conn, self._workdir(sub))
                run_dir = f"{base}/{safe_name(sub.run_id)}"
                status = parse_status(self._run(conn, status_script(run_dir)))
        except (Unreachable, Refused, SubmitRefused):
            return None
        if not status.exists or status.pid is None:
            return None
        return {
            "host": host,
            "port": self.port,
            "user": self.user,
            "dir": run_dir,
            "pid": status.pid,
            "started": None,
        }

    # -- helpers

    def _host(self, sub: Submission) -> str:
        # sub.config is this executor's configuration with placeholders substituted (and a
        # job's own `host:`); the constructor's is the raw talon.yaml entry
        host = sub.config.get("host") or self.config.get("host")
        if not host and sub.resources:
            host = sub.resources[0].get("address")
        if not host:
            raise SubmitRefused(
                "ssh executor: no host (set `host:` or allocate a resource with an `address`)",
                retryable=False,
            )
        return str(host)

    def _where(self, host: str, port: int | None = None) -> str:
        port = self.port if port is None else port
        return f"{self.user}@{host}" + ("" if port == 22 else f":{port}")

    def _workdir(self, sub: Submission) -> str | None:
        workdir = sub.config.get("workdir") or self.config.get("workdir")
        return str(workdir) if workdir else None

    def _base_dir(self, conn: Any, workdir: str | None) -> str:
        """The absolute directory holding the run directories on the host."""
        base = f"{workdir or '~'}/.talon/runs"
        # only a leading ~ is expanded (by the remote shell, as $HOME); the rest is literal
        quoted = '"$HOME"/' + shlex.quote(base[2:]) if base.startswith("~/") else shlex.quote(base)
        out = self._run(conn, f"{{ mkdir -p {quoted} && cd {quoted} && pwd -P; }} 2>&1").strip()
        if not out.startswith("/"):
            if out:  # the host said why (permission denied, a file in the way): not a retry's
                raise Refused(f"cannot create {base} on the host: {out[-200:]}")
            raise Unreachable(f"cannot create {base}: no answer")
        return out.splitlines()[-1]

    @contextmanager
    def _connection(self, host: str, port: int, *, user: object = None) -> Iterator[Any]:
        """An open fabric Connection whose host key has been verified, or Unreachable /
        Refused. The known_hosts file given in the configuration is the only source of
        trusted keys; anything not in it is rejected."""
        import paramiko
        from fabric import Config, Connection

        t = self.connect_timeout
        connect_kwargs: dict[str, Any] = {
            "banner_timeout": t,
            "auth_timeout": t,
            "channel_timeout": t,
        }
        if self.key_file is not None:
            connect_kwargs |= {
                "key_filename": str(self.key_file),
                "look_for_keys": False,
                "allow_agent": False,
            }
        conn = Connection(
            host,
            user=str(user) if user else self.user,
            port=port,
            # ssh_config files could redirect the host or relax checking: talon.yaml decides
            config=Config(overrides={"load_ssh_configs": False}),
            connect_timeout=max(1, round(t)),
            connect_kwargs=connect_kwargs,
        )
        client = paramiko.SSHClient()  # fabric's own client would accept any key (AutoAddPolicy)
        try:
            if self.known_hosts is not None:
                client.load_host_keys(str(self.known_hosts))
            else:
                client.load_system_host_keys()
        except OSError as e:
            raise Refused(f"cannot read known_hosts {self.known_hosts}: {e}") from e
        client.set_missing_host_key_policy(_reject_unknown(self.known_hosts))
        conn.client = client
        try:
            try:
                conn.open()
                transport = conn.client.get_transport()
                if transport is not None:
                    transport.set_keepalive(max(1, round(t)))
            except paramiko.BadHostKeyException as e:
                raise Refused(
                    f"host key for {host}:{port} has CHANGED: the server offers {e.key.get_name()} "
                    f"{e.key.fingerprint}, but {self._known_hosts_name()} has "
                    f"{e.expected_key.get_name()} {e.expected_key.fingerprint}; refusing to run"
                ) from e
            except Refused:
                raise
            except paramiko.AuthenticationException as e:
                raise Refused(f"authentication failed for {self._where(host, port)}: {e}") from e
            except (paramiko.SSHException, OSError, EOFError) as e:
                raise Unreachable(_describe_error(e)) from e
            yield conn
        finally:
            conn.close()

    def _known_hosts_name(self) -> str:
        return str(self.known_hosts) if self.known_hosts else "~/.ssh/known_hosts"

    def _run(self, conn: Any, script: str, *, timeout: float | None = None) -> str:
        """Run a sh script on the host; its stdout. Any transport trouble is Unreachable."""
        import paramiko
        from invoke.exceptions import CommandTimedOut

        try:
            result = conn.run(
                "/bin/sh -c " + shlex.quote(script),
                hide=True,
                warn=True,
                in_stream=False,
                timeout=timeout or self.command_timeout,
            )
        except CommandTimedOut as e:
            raise Unreachable(f"no answer within {e.timeout}s") from e
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise Unreachable(_describe_error(e)) from e
        return str(result.stdout)

    def _run_fed(self, conn: Any, script: str, stdin: str) -> str:
        """`_run` with `stdin` as the script's standard input, through paramiko itself (invoke
        feeds a stream one byte every 10 ms: seconds for a wrapper)."""
        import paramiko

        transport = conn.client.get_transport()
        if transport is None:
            raise Unreachable("the connection is closed")
        try:
            chan = transport.open_session(timeout=self.command_timeout)
            chan.settimeout(self.command_timeout)  # each send and read; socket.timeout is OSError
            with chan:
                chan.exec_command("/bin/sh -c " + shlex.quote(script))
                chan.sendall(stdin.encode())
                chan.shutdown_write()
                out = chan.makefile("rb").read()
                chan.makefile_stderr("rb").read()  # (drained, as invoke's hide=True does)
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise Unreachable(_describe_error(e)) from e
        return bytes(out).decode(errors="replace")

    def _sync_log(self, conn: Any, remote: str, remote_size: int, log_path: Path) -> None:
        """Append what the remote output has beyond the local log's size (the output only
        grows); copy it whole when the local log is longer (it is not this run's)."""
        import paramiko

        try:
            local_size = log_path.stat().st_size
        except FileNotFoundError:
            local_size = 0
        if local_size > remote_size:
            local_size = 0
            log_path.unlink()
        if remote_size == local_size:
            if not log_path.exists():
                log_path.parent.mkdir(parents=True, exist_ok=True)
                log_path.touch()
            return
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            sftp = conn.sftp()
            sftp.get_channel().settimeout(self.command_timeout)  # a cut link must not hang reads
            with sftp.open(remote, "rb") as src, log_path.open("ab") as dst:
                src.seek(local_size)
                src.prefetch(remote_size - local_size)
                remaining = remote_size - local_size
                while remaining > 0:
                    chunk = src.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    dst.write(chunk)
                    remaining -= len(chunk)
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise Unreachable(f"copying the output failed: {_describe_error(e)}") from e


def _settle(status: RunStatus, where: str) -> Status:
    """The run's status from its status files (see talon.executors.remote)."""
    if status.exit_code is not None:
        detail = describe_exit(
            status.exit_code, timed_out=status.timed_out, cancelled=status.cancelled
        )
        return Finished(status.exit_code, detail=detail)
    if status.alive:
        return Running(detail=f"running at {where} (pid {status.pid})")
    if not status.exists:
        return Lost(f"the run directory {where} is gone")
    if status.timed_out:  # the watchdog had to SIGKILL the whole group, wrapper included
        return Finished(137, detail="timed out (killed after ignoring SIGTERM)")
    if status.cancelled:
        return Finished(137, detail="cancelled (killed after ignoring SIGTERM)")
    if status.pid is None:
        return Finished(EXIT_NOT_STARTED, detail=f"the run wrapper never started at {where}")
    return Lost(f"the run wrapper (pid {status.pid}) at {where} ended without an exit status")


def _start_script(run_dir: str) -> str:
    """Create the run directory exclusively, save the wrapper read from stdin there and start
    it detached, once it is whole (its last line is WRAPPER_END); print its pid. A run
    directory that exists already means this run was started before: report that pid instead
    (and read the wrapper all the same, to end stdin cleanly)."""
    d = shlex.quote(run_dir)
    return f"""d={d}
umask 077
if mkdir {d} 2>/dev/null; then
  cat > "$d/run.sh"
  if [ "$(tail -n 1 "$d/run.sh")" = {shlex.quote(WRAPPER_END)} ]; then
    setsid /bin/sh "$d/run.sh" </dev/null >/dev/null 2>&1 &
    echo started=1
  else
    rm -rf {d}  # cut short (the connection dropped): not started, and a retry starts afresh
    echo truncated=1
  fi
else
  cat > /dev/null
fi
i=0
while [ ! -s "$d/pid" ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
echo "pid=$(cat "$d/pid" 2>/dev/null)"
"""


def _reject_unknown(known_hosts: Path | None) -> Any:
    """A paramiko policy refusing hosts not in known_hosts, naming the key's fingerprint."""
    import paramiko

    source = str(known_hosts) if known_hosts else "~/.ssh/known_hosts"

    class RejectUnknown(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            raise Refused(
                f"host key for {hostname} is UNKNOWN: the server offers {key.get_name()} "
                f"{key.fingerprint}, which is not in {source}; refusing to run"
            )

    return RejectUnknown()


def _describe_error(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) < 300 else text[:300] + "..."


def _key_values(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _path(value: object) -> Path | None:
    return Path(str(value)).expanduser() if value else None
