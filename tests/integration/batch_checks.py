"""Checks every batch executor (sge, slurm) must pass, run by each one's test module."""

from __future__ import annotations

import hashlib
import shlex
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from talon.executors.base import Executor, Finished
from talon.executors.remote import job_name
from talon.markers import format_marker, parse_markers

if TYPE_CHECKING:
    from tests.integration.conftest import Runs

NASTY = ("x; touch pwned", "$(id)", "`id`", 'it\'s "quoted"', "two  spaces", "*")


def success_failure_output_and_markers(
    ex: Executor, runs: Runs, tmp_path: Path, job_id_var: str
) -> None:
    progress = format_marker("progress", {"percent": 40})
    artifact = format_marker("artifact", {"url": "file:///data/out file.csv", "name": "it's"})
    ok = runs.sub(
        f'echo "job ${job_id_var} in $(pwd) region=$REGION"; echo {shlex.quote(progress)}; '
        f"echo to-stderr >&2; echo {shlex.quote(artifact)}",
        env={"REGION": "eu west; $(id)"},
        workdir=tmp_path,
    )
    bad = runs.sub("echo failing; exit 7")
    handles = [ex.submit(ok), ex.submit(bad)]  # both queued at once
    assert handles[0]["name"] == job_name(ok.run_id)
    assert runs.settle(ex, handles[0], ok) == Finished(0, detail="succeeded")
    assert runs.settle(ex, handles[1], bad) == Finished(7, detail="exit status 7")
    log = ok.log_path.read_text()
    assert f"job {handles[0]['job_id']} in {tmp_path} region=eu west; $(id)" in log
    assert "to-stderr" in log
    assert list(parse_markers(log.splitlines())) == [
        ("progress", {"percent": 40}),
        ("artifact", {"name": "it's", "url": "file:///data/out file.csv"}),
    ]
    assert "failing" in bad.log_path.read_text()


def arguments_arrive_literally(ex: Executor, runs: Runs, tmp_path: Path) -> None:
    sub = runs.sub(("printf", "[%s]\\n", *NASTY), workdir=tmp_path)
    assert runs.settle(ex, ex.submit(sub), sub) == Finished(0, detail="succeeded")
    assert sub.log_path.read_text().splitlines() == [f"[{a}]" for a in NASTY]
    assert not (tmp_path / "pwned").exists()


def files_holding(root: Path, value: str) -> list[Path]:
    """Every file under `root` whose bytes contain `value`."""
    needle = value.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def secret_reaches_the_job_and_no_file(ex: Executor, runs: Runs) -> None:
    """A secret in the run's environment arrives in the job, and no file under the repository
    (here: the test's root, which holds the status directory and the logs) contains it: not
    while the job is queued or running, not after it ended. The job prints only a digest of it."""
    secret = f"ENVSECRET-{uuid.uuid4().hex}"
    sub = runs.sub('printf %s "$DB" | sha256sum; sleep 2', env={"DB": secret, "REGION": "eu"})
    handle = ex.submit(sub)
    assert files_holding(runs.root, secret) == [], "written at submission"
    assert runs.settle(ex, handle, sub) == Finished(0, detail="succeeded")
    assert hashlib.sha256(secret.encode()).hexdigest() in sub.log_path.read_text()
    assert files_holding(runs.root, secret) == []
