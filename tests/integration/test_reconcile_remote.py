"""The remote executors through the whole pass: `talon reconcile` against real sshd hosts,
Grid Engine and Slurm, with progress and artifacts reported from the remote side."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.batch_checks import files_holding
from tests.integration.conftest import SshInfra

pytestmark = pytest.mark.integration

# A remote host has no Talon: the job reports through marker lines in its output.
REPORT = (
    'echo \'::talon:: {"progress":{"kind":"percent","percent":60}}\'; '
    'echo \'::talon:: {"artifact":{"url":"file:///out/\'"$TALON_JOB"\'.csv","name":"out"}}\''
)


def talon(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "talon", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=None if env is None else os.environ | env,
    )


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "state").mkdir(exist_ok=True)
    return root


def runs(root: Path) -> dict[str, dict[str, Any]]:
    return {
        p.name[:-5]: json.loads(p.read_text()) for p in sorted((root / "state").glob("*/*/*.json"))
    }


def ssh_executor(infra: SshInfra, **extra: str) -> str:
    lines = [
        "executors:",
        "  web:",
        "    type: ssh",
        f"    user: {infra.user}",
        f"    key_file: {infra.key_file}",
        f"    known_hosts: {infra.known_hosts}",
        "    connect_timeout: 2s",
        "    kill_grace: 2s",
    ]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    return "timezone: UTC\n" + "\n".join(lines) + "\n"


def test_ssh_jobs_spread_over_hosts_by_type(
    tmp_path: Path, ssh_infra: SshInfra, ssh_hosts: dict[str, str]
) -> None:
    hosts = "web:\n" + "".join(
        f"  {name}: {{type: web, address: {addr}}}\n" for name, addr in ssh_hosts.items()
    )
    jobs = "jobs:\n" + "".join(
        f"  w{i}:\n    executor: web\n    trigger: external\n"
        f"    resources: [{{select: hosts/web/*, where: {{type: web}}}}]\n"
        f"    command: |-\n      hostname; {REPORT}\n"
        for i in range(3)
    )
    root = write(
        tmp_path,
        {
            "talon.yaml": ssh_executor(ssh_infra),
            "resources/hosts.yaml": hosts,
            "schedule/a.yaml": jobs,
        },
    )
    assert talon(root, "validate").returncode == 0
    for i in range(3):
        assert talon(root, "trigger", f"w{i}").returncode == 0
    result = talon(root, "reconcile", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    got = runs(root)
    assert all(r["state"] == "succeeded" for r in got.values()), got
    used = {r["resources"][0]["path"] for r in got.values()}
    assert used == {f"hosts/web/{name}" for name in ssh_hosts}, (
        "one run a host: each holds its only slot"
    )
    for run_id, run in got.items():
        log = talon(root, "log", run_id).stdout
        assert log.splitlines()[0] == run["resources"][0]["path"].rsplit("/", 1)[1]
        assert run["progress"] == {"kind": "percent", "percent": 60.0}
        assert [a["url"] for a in run["artifacts"]] == [f"file:///out/{run['job']}.csv"]


def test_ssh_host_out_of_contact_beyond_the_lease_is_lost(
    tmp_path: Path, ssh_infra: SshInfra, ssh_hosts: dict[str, str]
) -> None:
    config = ssh_executor(ssh_infra, lease="2s", host=ssh_hosts["h1"])
    jobs = "jobs:\n  long:\n    executor: web\n    trigger: external\n    command: sleep 30\n"
    root = write(tmp_path, {"talon.yaml": config, "schedule/a.yaml": jobs})
    talon(root, "trigger", "long")
    assert "dispatch" in talon(root, "reconcile").stdout
    subprocess.run(["ip", "link", "set", "veth-h1", "down"], check=True)
    try:
        first = talon(root, "reconcile")
        assert first.returncode == 0, first.stderr
        (run,) = runs(root).values()
        assert run["state"] == "running", "a host out of contact is not lost at once"
        time.sleep(2.5)
        talon(root, "reconcile")
        (run,) = runs(root).values()
        assert run["state"] == "failed"
        assert run["reason"] == "lost"
        assert run["history"][-1]["reason"].startswith("lost: host ")
        assert "longer than the lease (2s)" in run["history"][-1]["reason"]
    finally:
        subprocess.run(["ip", "link", "set", "veth-h1", "up"], check=True)


@pytest.mark.parametrize("kind", ["sge", "slurm"])
def test_cluster_job_through_reconcile(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(kind)  # the service is up (or the test fails in CI)
    executor = "  farm: {type: sge, queue: all.q}\n" if kind == "sge" else "  farm: {type: slurm}\n"
    jobs = (
        "jobs:\n  ok:\n    executor: farm\n    trigger: external\n"
        f"    command: |-\n      printf '%s\\n' ${{params.arg}}; {REPORT}\n"
        "  bad:\n    executor: farm\n    trigger: external\n    command: exit 5\n"
    )
    root = write(
        tmp_path, {"talon.yaml": "timezone: UTC\nexecutors:\n" + executor, "schedule/a.yaml": jobs}
    )
    ok = talon(root, "trigger", "ok", "--param", "arg=a b; touch pwned").stdout.strip()
    bad = talon(root, "trigger", "bad").stdout.strip()
    result = talon(root, "reconcile", "--wait")
    assert result.returncode == 1, "a failed run makes --wait exit 1"
    got = runs(root)
    assert got[ok]["state"] == "succeeded", got[ok]
    assert got[ok]["executor"]["type"] == kind
    assert got[ok]["progress"] == {"kind": "percent", "percent": 60.0}
    assert talon(root, "log", ok).stdout.splitlines()[0] == "a b; touch pwned"
    assert not list(root.rglob("pwned"))
    assert got[bad]["state"] == "failed" and got[bad]["exit_code"] == 5


@pytest.mark.parametrize("kind", ["sge", "slurm", "ssh"])
def test_a_secret_reaches_the_job_and_nothing_talon_writes(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """SPEC: secret values never appear in the repository, run files, logs Talon writes, or
    error messages. The job prints only a digest of the value it got."""
    if kind == "ssh":
        infra: SshInfra = request.getfixturevalue("ssh_infra")
        config = ssh_executor(infra, host=infra.host, port=str(infra.port))
        config = config.replace("  web:", "  farm:")
    else:
        request.getfixturevalue(kind)
        farm = "{type: sge, queue: all.q}" if kind == "sge" else "{type: slurm}"
        config = f"timezone: UTC\nexecutors:\n  farm: {farm}\n"
    config += "secrets:\n  db: {env: AUDIT_DB_PASSWORD}\n"
    jobs = (
        "jobs:\n  audit:\n    executor: farm\n    trigger: external\n    secrets: [db]\n"
        '    command: printf %s "$DB" | sha256sum\n'
    )
    root = write(tmp_path, {"talon.yaml": config, "schedule/a.yaml": jobs})
    secret = f"ENVSECRET-{uuid.uuid4().hex}"
    run_id = talon(root, "trigger", "audit").stdout.strip()
    first = talon(root, "reconcile", env={"AUDIT_DB_PASSWORD": secret})
    assert files_holding(root, secret) == [], "written at dispatch"
    done = talon(root, "reconcile", "--wait", env={"AUDIT_DB_PASSWORD": secret})
    run = runs(root)[run_id]
    assert run["state"] == "succeeded", (run, done.stderr)
    log = talon(root, "log", run_id)
    assert log.stdout.split()[0] == hashlib.sha256(secret.encode()).hexdigest()
    assert files_holding(root, secret) == []
    said = first.stdout + first.stderr + done.stdout + done.stderr + log.stdout + log.stderr
    assert secret not in said


def test_a_cluster_job_gone_behind_our_back_is_lost_on_the_pass_clock(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The accounting grace was measured on the wall clock: `reconcile --now` a day later
    still said running, where every other decision takes the pass's clock."""
    request.getfixturevalue("sge")
    jobs = "jobs:\n  j:\n    executor: farm\n    trigger: external\n    command: sleep 300\n"
    root = write(
        tmp_path,
        {
            "talon.yaml": "timezone: UTC\nexecutors:\n  farm: {type: sge, queue: all.q}\n",
            "schedule/a.yaml": jobs,
        },
    )
    at = "2026-11-27T10:00:00+00:00"
    run_id = talon(root, "trigger", "j", "--now", at).stdout.strip()
    assert talon(root, "reconcile", "--now", at).returncode == 0
    path = next((root / "state").glob(f"*/j/{run_id}.json"))
    run = json.loads(path.read_text())
    subprocess.run(["qdel", run["executor"]["handle"]["job_id"]], capture_output=True, check=False)
    run["executor"]["handle"]["job_id"] = "987654"  # in neither qstat nor qacct
    path.write_text(json.dumps(run, indent=2))
    talon(root, "reconcile", "--now", "2026-11-27T12:00:00+00:00")
    assert runs(root)[run_id]["state"] == "running"  # first missed: the grace starts
    talon(root, "reconcile", "--now", "2026-11-28T10:00:00+00:00")
    got = runs(root)[run_id]
    assert (got["state"], got["reason"]) == ("failed", "lost"), got
