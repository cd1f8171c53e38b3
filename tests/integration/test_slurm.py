"""The slurm executor against a real single-node Slurm (ci/infra/slurm-up.sh)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from talon.executors.base import Finished, Lost, Running
from talon.executors.remote import job_name
from talon.executors.slurm import SlurmExecutor
from tests.integration import batch_checks

if TYPE_CHECKING:
    from tests.integration.conftest import Runs

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("slurm")]

CONFIG = {"type": "slurm", "partition": "debug", "kill_grace": 2}


def _state(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip()


def test_success_failure_output_and_markers(runs: Runs, tmp_path: Path) -> None:
    batch_checks.success_failure_output_and_markers(
        SlurmExecutor(CONFIG), runs, tmp_path, "SLURM_JOB_ID"
    )


def test_arguments_arrive_literally(runs: Runs, tmp_path: Path) -> None:
    batch_checks.arguments_arrive_literally(SlurmExecutor(CONFIG), runs, tmp_path)


def test_cancel_timeout_and_scancel_behind_our_back(runs: Runs) -> None:
    """Three long jobs at once: one cancelled by Talon, one timing out, one scancel'd by someone
    else. scancel signals the job with SIGTERM; the wrapper outlives it only if it is quick."""
    ex = SlurmExecutor(CONFIG)
    cancelled = runs.sub("echo started; sleep 60")
    timed = runs.sub("echo started; sleep 60", timeout_s=1)
    killed = runs.sub("echo started; sleep 60")
    hc, ht, hk = ex.submit(cancelled), ex.submit(timed), ex.submit(killed)
    runs.wait_for(
        "jobs running",
        lambda: _state(hc["job_id"]) == "RUNNING" and _state(hk["job_id"]) == "RUNNING",
    )
    ex.cancel(hc, cancelled)
    subprocess.run(["scancel", hk["job_id"]], check=True, capture_output=True)

    status = runs.settle(ex, hc, cancelled)
    assert isinstance(status, Finished)
    assert status.exit_code == 143
    assert status.detail.startswith("cancelled")
    ex.cancel(hc, cancelled)  # idempotent

    assert runs.settle(ex, ht, timed) == Finished(124, detail="timed out")
    assert "talon: timed out after 1s" in timed.log_path.read_text()

    status = runs.settle(ex, hk, killed)
    assert isinstance(status, Finished)
    assert status.exit_code == 143
    assert status.detail.startswith("killed by signal 15 (SIGTERM)")


def test_adopt_after_a_pass_died_right_after_submit(runs: Runs) -> None:
    ex = SlurmExecutor(CONFIG)
    sub = runs.sub("sleep 1; exit 3")
    # the same run seen by a pass that lost the local status directory too: only the
    # cluster can answer, by job name
    elsewhere = replace(sub, status_dir=runs.root / "other-proc")
    assert ex.adopt(sub) is None
    job_id = ex.submit(sub)["job_id"]  # the pass dies here: the handle is never recorded
    expected = {"job_id": job_id, "name": job_name(sub.run_id)}
    assert ex.adopt(sub) == expected  # the next pass looks before it submits: recorded id
    assert ex.adopt(elsewhere) == expected  # by name, from squeue
    assert runs.settle(ex, expected, sub) == Finished(3, detail="exit status 3")
    # still found by name after it ended (squeue -t all)
    runs.wait_for("the ended job by name", lambda: ex.adopt(elsewhere) == expected, timeout=15)


def test_unknown_job_waits_then_is_lost(runs: Runs) -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    sub = runs.sub("true")
    handle = {"job_id": "987654", "name": job_name(sub.run_id)}
    status = SlurmExecutor(CONFIG, now=lambda: now).poll(handle, sub)
    assert isinstance(status, Running)
    assert "waiting" in status.detail
    later = SlurmExecutor(CONFIG, now=lambda: now + timedelta(seconds=61))
    status = later.poll(handle, sub)
    assert isinstance(status, Lost)
    assert "987654" in status.reason


def test_a_secret_reaches_the_job_and_no_file_in_the_repository(runs: Runs) -> None:
    batch_checks.secret_reaches_the_job_and_no_file(SlurmExecutor(CONFIG), runs)
