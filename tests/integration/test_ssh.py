"""The ssh executor against real sshd: loopback (127.0.0.1:2222) and three hosts in network
namespaces (h1-h3), all from ci/infra. The remote user is talon-test; the tests run as root on the
same machine, so they can look at (and kill) remote processes directly."""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from talon.executors.base import Finished, Handle, Lost, Running, Submission, SubmitRefused
from talon.executors.ssh import SshExecutor
from talon.markers import format_marker, parse_markers
from tests.integration.batch_checks import files_holding

if TYPE_CHECKING:
    from tests.integration.conftest import Runs, SshInfra

pytestmark = pytest.mark.integration

NASTY = ("x; touch pwned", "$(id)", "`id`", 'it\'s "quoted"', "two  spaces", "*", "\\n")


@contextmanager
def link_down(host: str) -> Iterator[None]:
    """Cut a namespace host off the network (its veth on our side), and always restore it."""
    veth = f"veth-{host}"
    subprocess.run(["ip", "link", "set", veth, "down"], check=True)
    try:
        yield
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)


def _log(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_success_output_env_and_markers(ssh_infra: SshInfra, runs: Runs) -> None:
    ex = SshExecutor(ssh_infra.config())
    progress = format_marker("progress", {"percent": 50})
    artifact = format_marker("artifact", {"url": "s3://bucket/out file.csv", "name": "it's"})
    sub = runs.sub(
        f'echo hello from $(hostname); echo "region=$REGION"; echo {shlex.quote(progress)}; '
        f"echo 'to stderr' >&2; printf '%s\\n' {shlex.quote(artifact)}",
        env={"REGION": "eu west; $(id)"},
    )
    handle = ex.submit(sub)
    assert set(handle) >= {"host", "port", "user", "dir", "pid"}
    assert handle["dir"].startswith("/home/talon-test/.talon/runs/")
    status = runs.settle(ex, handle, sub)
    assert status == Finished(0, detail="succeeded")
    log = _log(sub.log_path)
    assert "hello from vm" in log
    assert "region=eu west; $(id)" in log
    assert "to stderr" in log
    markers = list(parse_markers(log.splitlines()))
    assert markers == [
        ("progress", {"percent": 50}),
        ("artifact", {"name": "it's", "url": "s3://bucket/out file.csv"}),
    ]


def test_working_directory(ssh_infra: SshInfra, runs: Runs) -> None:
    """The command runs in the configured remote workdir (a leading ~ is the remote home), or in
    the login directory; the submission's local workdir (the repository) is not used there."""
    local_repo = Path("/nonexistent/local/repo")
    plain = SshExecutor(ssh_infra.config())
    configured = SshExecutor(ssh_infra.config(workdir="~/work dir"))
    a = runs.sub("pwd", workdir=local_repo)
    b = runs.sub("pwd", workdir=local_repo)
    ha, hb = plain.submit(a), configured.submit(b)
    assert runs.settle(plain, ha, a) == Finished(0, detail="succeeded")
    assert runs.settle(configured, hb, b) == Finished(0, detail="succeeded")
    assert _log(a.log_path).strip() == "/home/talon-test"
    assert _log(b.log_path).strip() == "/home/talon-test/work dir"
    assert hb["dir"].startswith("/home/talon-test/work dir/.talon/runs/integration_")


def test_failure_exit_code(ssh_infra: SshInfra, runs: Runs) -> None:
    ex = SshExecutor(ssh_infra.config())
    sub = runs.sub("echo failing; exit 7")
    status = runs.settle(ex, ex.submit(sub), sub)
    assert status == Finished(7, detail="exit status 7")
    assert "failing" in _log(sub.log_path)


def test_arguments_arrive_literally(ssh_infra: SshInfra, runs: Runs) -> None:
    ex = SshExecutor(ssh_infra.config())
    sentinel = Path("/home/talon-test/pwned")
    sentinel.unlink(missing_ok=True)
    argv = ("printf", "[%s]\\n", *NASTY)
    sub = runs.sub(argv)
    assert runs.settle(ex, ex.submit(sub), sub) == Finished(0, detail="succeeded")
    assert _log(sub.log_path).splitlines() == [f"[{a}]" for a in NASTY]
    assert not sentinel.exists()


def test_cancel(ssh_infra: SshInfra, runs: Runs) -> None:
    ex = SshExecutor(ssh_infra.config())
    sub = runs.sub("echo started; sleep 60")
    handle = ex.submit(sub)
    runs.wait_for("output", lambda: "started" in _poll_log(ex, handle, sub))
    ex.cancel(handle, sub)
    status = ex.poll(handle, sub)
    assert status == Finished(143, detail="cancelled")
    assert not _alive(handle["pid"])
    ex.cancel(handle, sub)  # idempotent


def test_timeout(ssh_infra: SshInfra, runs: Runs) -> None:
    ex = SshExecutor(ssh_infra.config())
    sub = runs.sub("echo working; sleep 60", timeout_s=1)
    started = time.monotonic()
    status = runs.settle(ex, ex.submit(sub), sub)
    assert status == Finished(124, detail="timed out")
    assert time.monotonic() - started < 10
    assert "talon: timed out after 1s" in _log(sub.log_path)


def test_timeout_ignoring_sigterm_is_killed(ssh_infra: SshInfra, runs: Runs) -> None:
    ex = SshExecutor(ssh_infra.config(kill_grace=1))
    sub = runs.sub("trap '' TERM; sleep 60", timeout_s=1)
    status = runs.settle(ex, ex.submit(sub), sub)
    assert status == Finished(137, detail="timed out (killed after ignoring SIGTERM)")


@pytest.mark.usefixtures("as_root")
def test_command_killed_outside_talon(ssh_infra: SshInfra, runs: Runs) -> None:
    """kill -9 of the command: the wrapper survives and records 137 (128 + SIGKILL)."""
    ex = SshExecutor(ssh_infra.config())
    sub = runs.sub("echo pid=$$; exec sleep 60")
    handle = ex.submit(sub)
    runs.wait_for("the command's pid", lambda: "pid=" in _poll_log(ex, handle, sub))
    pid = int(_log(sub.log_path).split("pid=")[1].split()[0])
    os.kill(pid, signal.SIGKILL)
    assert runs.settle(ex, handle, sub) == Finished(137, detail="killed by signal 9 (SIGKILL)")


@pytest.mark.usefixtures("as_root")
def test_wrapper_killed_outside_talon_is_lost(ssh_infra: SshInfra, runs: Runs) -> None:
    """kill -9 of the whole process group (wrapper included): nobody recorded an exit status."""
    ex = SshExecutor(ssh_infra.config())
    sub = runs.sub("sleep 60")
    handle = ex.submit(sub)
    assert isinstance(ex.poll(handle, sub), Running)
    os.killpg(handle["pid"], signal.SIGKILL)
    status = runs.settle(ex, handle, sub, timeout=10)
    assert isinstance(status, Lost)
    assert "ended without an exit status" in status.reason


def test_adopt_and_resubmit_find_the_same_run(ssh_infra: SshInfra, runs: Runs) -> None:
    ex = SshExecutor(ssh_infra.config())
    sub = runs.sub("sleep 60")
    assert ex.adopt(sub) is None
    handle = ex.submit(sub)
    try:
        adopted = ex.adopt(sub)
        assert adopted is not None
        assert (adopted["dir"], adopted["pid"]) == (handle["dir"], handle["pid"])
        assert ex.submit(sub)["pid"] == handle["pid"]  # a second submit starts nothing new
    finally:
        ex.cancel(handle, sub)


class _Recording(SshExecutor):
    """Keeps every command line sent to the host (the remote `ps` shows them to all users)."""

    sent: list[str]

    def _run(self, conn: Any, script: str, **kwargs: Any) -> str:
        self.sent = [*getattr(self, "sent", []), script]
        return super()._run(conn, script, **kwargs)

    def _run_fed(self, conn: Any, script: str, stdin: str) -> str:
        self.sent = [*getattr(self, "sent", []), script]
        return super()._run_fed(conn, script, stdin)


def test_a_secret_reaches_the_job_and_no_file_or_command_line(
    ssh_infra: SshInfra, runs: Runs
) -> None:
    """The secret arrives in the job's environment, but is in no command line sent to the host,
    no file left in the remote run directory (the wrapper removes its script once the shell
    reads it), and no file under the local repository. The job prints only a digest of it."""
    ex = _Recording(ssh_infra.config())
    secret = f"ENVSECRET-{uuid.uuid4().hex}"
    sub = runs.sub('printf %s "$DB" | sha256sum; sleep 2', env={"DB": secret})
    handle = ex.submit(sub)
    run_dir = Path(handle["dir"])
    assert files_holding(run_dir, secret) == [], "left while it runs"  # (submit saw its pid)
    assert runs.settle(ex, handle, sub) == Finished(0, detail="succeeded")
    assert hashlib.sha256(secret.encode()).hexdigest() in _log(sub.log_path)
    assert files_holding(run_dir, secret) == []
    assert files_holding(runs.root, secret) == []
    assert [s for s in ex.sent if secret in s] == []


@pytest.mark.parametrize("case", ["unknown", "changed"])
def test_host_key_refused_and_nothing_runs(
    ssh_infra: SshInfra, runs: Runs, tmp_path: Path, case: str
) -> None:
    known = tmp_path / "known_hosts"
    key = tmp_path / "other.key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    other_key = key.with_suffix(".key.pub").read_text().split()[:2]
    if case == "unknown":  # known_hosts knows other hosts, not this one
        known.write_text(f"10.200.0.99 {' '.join(other_key)}\n")
    else:  # known_hosts has a different key for this very host:port
        known.write_text(f"[{ssh_infra.host}]:{ssh_infra.port} {' '.join(other_key)}\n")
    sentinel = Path(f"/tmp/talon-sentinel-{uuid.uuid4().hex}")
    ex = SshExecutor(ssh_infra.config(known_hosts=str(known)))
    sub = runs.sub(("touch", str(sentinel)))
    with pytest.raises(SubmitRefused) as refused:
        ex.submit(sub)
    err = refused.value
    assert not err.retryable
    assert f"{ssh_infra.host}" in err.reason
    assert "SHA256:" in err.reason
    assert ("UNKNOWN" if case == "unknown" else "CHANGED") in err.reason
    time.sleep(0.5)
    assert not sentinel.exists()
    # with the right known_hosts the very same submission runs
    ok = SshExecutor(ssh_infra.config())
    assert runs.settle(ok, ok.submit(sub), sub) == Finished(0, detail="succeeded")
    assert sentinel.exists()
    sentinel.unlink()


def test_closed_port_refuses_retryably(ssh_infra: SshInfra, runs: Runs) -> None:
    ex = SshExecutor(ssh_infra.config(port=2299))
    with pytest.raises(SubmitRefused) as refused:
        ex.submit(runs.sub("true"))
    assert refused.value.retryable
    assert "unreachable" in refused.value.reason


def test_a_workdir_the_host_cannot_make_refuses_with_its_reason(
    ssh_infra: SshInfra, runs: Runs
) -> None:
    """It was 'unreachable', retried for ever, with the host's reason cut off."""
    ex = SshExecutor(ssh_infra.config(workdir="/proc/talon-nowhere"))
    with pytest.raises(SubmitRefused) as refused:
        ex.submit(runs.sub("true"))
    assert not refused.value.retryable
    assert "cannot create /proc/talon-nowhere/.talon/runs on the host: mkdir" in (
        refused.value.reason
    )


def test_dispatch_over_three_hosts(
    ssh_hosts: dict[str, str], ssh_infra: SshInfra, runs: Runs
) -> None:
    ex = SshExecutor(ssh_infra.config(host=None, port=22))
    subs = {
        name: runs.sub("hostname", resources=({"type": "small", "address": addr},))
        for name, addr in ssh_hosts.items()
    }
    handles = {name: ex.submit(sub) for name, sub in subs.items()}  # all running at once
    for name, sub in subs.items():
        assert handles[name]["host"] == ssh_hosts[name]
        assert runs.settle(ex, handles[name], sub) == Finished(0, detail="succeeded")
        assert _log(sub.log_path).strip() == name


def test_host_down_at_submit(ssh_hosts: dict[str, str], ssh_infra: SshInfra, runs: Runs) -> None:
    ex = SshExecutor(ssh_infra.config(host=ssh_hosts["h2"], port=22, connect_timeout=1))
    sub = runs.sub("true")
    started = time.monotonic()
    with link_down("h2"), pytest.raises(SubmitRefused) as refused:
        ex.submit(sub)
    assert refused.value.retryable
    assert ssh_hosts["h2"] in refused.value.reason
    assert time.monotonic() - started < 8
    # back up: a later pass retries the refused run (the first packets after the link returns
    # may still wait for ARP, so allow a few attempts, as successive passes would)
    handle = _submit_retrying(ex, sub, timeout=15)
    assert runs.settle(ex, handle, sub) == Finished(0, detail="succeeded")


def test_host_cut_off_mid_run_then_settled(
    ssh_hosts: dict[str, str], ssh_infra: SshInfra, runs: Runs
) -> None:
    ex = SshExecutor(ssh_infra.config(host=ssh_hosts["h3"], port=22, connect_timeout=1))
    sub = runs.sub("echo begin; sleep 2; echo end; exit 3")
    handle = ex.submit(sub)
    with link_down("h3"):
        started = time.monotonic()
        status = ex.poll(handle, sub)
        assert time.monotonic() - started < 8  # the timeouts hold: no hang on a dead link
        assert isinstance(status, Running)
        assert status.detail.startswith(f"host {ssh_hosts['h3']} unreachable since ")
        time.sleep(2.5)  # the run ends while the host is cut off
        again = ex.poll(handle, sub)
        assert isinstance(again, Running)
        assert again.detail.split(": ")[0] == status.detail.split(": ")[0]  # same "since"
    status = runs.settle(ex, handle, sub, timeout=15)
    assert status == Finished(3, detail="exit status 3")
    assert _log(sub.log_path).splitlines() == ["begin", "end"]


def _submit_retrying(ex: SshExecutor, sub: Submission, timeout: float) -> Handle:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ex.submit(sub)
        except SubmitRefused as e:
            if not e.retryable or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _poll_log(ex: SshExecutor, handle: Handle, sub: Submission) -> str:
    """Poll (which copies the output so far) and return the local log."""
    ex.poll(handle, sub)
    return _log(sub.log_path) if sub.log_path.exists() else ""


def _alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in text
