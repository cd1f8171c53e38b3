"""Fixtures for the integration tests: real sshd, Grid Engine and Slurm, started by ci/infra.

As root, each fixture runs its (idempotent, fast when already up) `ci/infra/*-up.sh` script once per
session. Without root, a service that is not up skips its tests with a message saying how to start
it - except under CI (`CI` set), where a missing service fails them: a skipped integration test
would pass CI without testing anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from talon.executors.base import Executor, Handle, Running, Status, Submission

REPO = Path(__file__).resolve().parents[2]
INFRA_SCRIPTS = REPO / "ci" / "infra"
INFRA_DIR = Path(os.environ.get("TALON_INFRA_DIR", "/var/tmp/talon-infra"))
HOW = "run `sudo ci/infra/all-up.sh` first (see docs/executors.md)"

SSH_HOSTS = {"h1": "10.200.0.11", "h2": "10.200.0.12", "h3": "10.200.0.13"}


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: integration tests must not skip)", pytrace=False)
    pytest.skip(f"{message}: {HOW}")


def _ensure(script: str, tools: tuple[str, ...], ready: Callable[[], bool], what: str) -> None:
    """Bring a service up (as root) or skip/fail when it is not up."""
    detail = ""
    if os.geteuid() == 0:
        proc = subprocess.run(
            [str(INFRA_SCRIPTS / script)], capture_output=True, text=True, timeout=600, check=False
        )
        detail = f"; {script} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-800:]}"
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        _unavailable(f"{what}: {', '.join(missing)} not installed{detail}")
    if not ready():
        _unavailable(f"{what} is not up{detail}")


@dataclass(frozen=True)
class SshInfra:
    """Where ci/infra/ssh-up.sh put things."""

    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path

    def config(self, **extra: Any) -> dict[str, Any]:
        return {
            "type": "ssh",
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "key_file": str(self.key_file),
            "known_hosts": str(self.known_hosts),
            "connect_timeout": 2,
            "kill_grace": 2,
        } | extra


def _banner(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=2) as s:
            return s.recv(4) == b"SSH-"
    except OSError:
        return False


@pytest.fixture(scope="session")
def ssh_infra() -> SshInfra:
    infra = SshInfra(
        host="127.0.0.1",
        port=int(os.environ.get("TALON_SSH_PORT", "2222")),
        user=os.environ.get("TALON_SSH_USER", "talon-test"),
        key_file=INFRA_DIR / "ssh" / "client",
        known_hosts=INFRA_DIR / "ssh" / "known_hosts",
    )
    _ensure(
        "ssh-up.sh",
        ("sshd",),
        lambda: infra.known_hosts.exists() and _banner(infra.host, infra.port),
        f"sshd on {infra.host}:{infra.port}",
    )
    return infra


@pytest.fixture(scope="session")
def as_root() -> None:
    """For tests that kill the remote user's processes or cut network links."""
    if os.geteuid() != 0:
        _unavailable("this test needs root (it kills another user's processes or cuts links)")


@pytest.fixture(scope="session")
def ssh_hosts(ssh_infra: SshInfra, as_root: None) -> dict[str, str]:
    """The three network-namespace hosts: name -> address (each answers `hostname` with name).
    Tests cut them off with `ip link set veth-hN down`, hence root."""
    _ensure(
        "ssh-hosts-up.sh",
        ("ip", "sshd"),
        lambda: all(_banner(a, 22) for a in SSH_HOSTS.values()),
        "the ssh hosts h1-h3 (network namespaces)",
    )
    return dict(SSH_HOSTS)


def _ok(*argv: str) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def sge() -> None:
    _ensure("sge-up.sh", ("qsub", "qstat", "qacct", "qdel"), lambda: _ok("qstat"), "Grid Engine")


@pytest.fixture(scope="session")
def slurm() -> None:
    def ready() -> bool:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, check=False
        )
        return out.returncode == 0 and out.stdout.strip() in {"idle", "mixed", "allocated"}

    _ensure("slurm-up.sh", ("sbatch", "squeue", "scontrol", "scancel"), ready, "Slurm")


# -- helpers shared by the test modules (as fixtures: tests/integration is not a package)


@dataclass
class Runs:
    """Builds submissions in a temporary directory and waits for their outcome."""

    root: Path
    counter: int = 0

    def sub(
        self,
        command: str | tuple[str, ...],
        *,
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        timeout_s: float | None = None,
        workdir: Path | None = None,
        resources: tuple[dict[str, Any], ...] = (),
        run_id: str | None = None,
    ) -> Submission:
        self.counter += 1
        # ids shaped like the scheduler's (`job@stamp`), unique across test sessions
        stamp = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.{uuid.uuid4().hex[:8]}"
        rid = run_id or f"integration@{stamp}"
        return Submission(
            run_id=rid,
            job="integration",
            command=command,
            env={"TALON_RUN_ID": rid, "TALON_JOB": "integration"} | (env or {}),
            # the log directory does not exist yet; the status directory is shared by all runs,
            # as the scheduler's state/.talon/proc is
            log_path=self.root / "logs" / f"{self.counter}" / "run.log",
            status_dir=self.root / "proc",
            workdir=workdir,
            timeout_s=timeout_s,
            config=config or {},
            resources=resources,
        )

    @staticmethod
    def settle(
        executor: Executor,
        handle: Handle,
        sub: Submission,
        *,
        timeout: float = 30,
        until: Callable[[Status], bool] = lambda s: not isinstance(s, Running),
    ) -> Status:
        """Poll until `until(status)` holds; fail after `timeout` seconds with the last status."""
        deadline = time.monotonic() + timeout
        while True:
            status = executor.poll(handle, sub)
            if until(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"{sub.run_id}: no outcome after {timeout}s: {status}")
            time.sleep(0.25)

    @staticmethod
    def wait_for(what: str, check: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.1)


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Runs]:
    # cluster jobs run as root on this machine and read the files directly; make them reachable
    tmp_path.chmod(0o755)
    yield Runs(tmp_path)
