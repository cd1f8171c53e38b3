"""The sge executor against a real single-node Grid Engine (ci/infra/sge-up.sh)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from talon.executors.base import Finished, Lost, Running
from talon.executors.remote import EXIT_NOT_STARTED, job_name
from talon.executors.sge import SgeExecutor
from tests.integration import batch_checks

if TYPE_CHECKING:
    from tests.integration.conftest import Runs

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("sge")]

CONFIG = {"type": "sge", "queue": "all.q", "kill_grace": 2}


def _running(job_id: str) -> bool:
    out = subprocess.run(["qstat", "-s", "r"], capture_output=True, text=True, check=False)
    return any(line.split()[:1] == [job_id] for line in out.stdout.splitlines())


def test_success_failure_output_and_markers(runs: Runs, tmp_path: Path) -> None:
    batch_checks.success_failure_output_and_markers(SgeExecutor(CONFIG), runs, tmp_path, "JOB_ID")


def test_arguments_arrive_literally(runs: Runs, tmp_path: Path) -> None:
    batch_checks.arguments_arrive_literally(SgeExecutor(CONFIG), runs, tmp_path)


def test_cancel_timeout_and_qdel_behind_our_back(runs: Runs) -> None:
    """Three long jobs at once: one cancelled by Talon, one timing out, one qdel'd by someone
    else (Grid Engine kills with SIGKILL: exit 137, `failed 100`)."""
    ex = SgeExecutor(CONFIG)
    cancelled = runs.sub("echo started; sleep 60")
    timed = runs.sub("echo started; sleep 60", timeout_s=1)
    deleted = runs.sub("echo started; sleep 60")
    hc, ht, hd = ex.submit(cancelled), ex.submit(timed), ex.submit(deleted)
    runs.wait_for("jobs running", lambda: _running(hc["job_id"]) and _running(hd["job_id"]))
    ex.cancel(hc, cancelled)
    subprocess.run(["qdel", hd["job_id"]], check=True, capture_output=True)

    status = runs.settle(ex, hc, cancelled)
    assert isinstance(status, Finished)
    assert (status.exit_code, status.detail.split(" (")[0]) == (137, "cancelled")
    ex.cancel(hc, cancelled)  # idempotent

    assert runs.settle(ex, ht, timed) == Finished(124, detail="timed out")
    assert "talon: timed out after 1s" in timed.log_path.read_text()

    status = runs.settle(ex, hd, deleted)
    assert isinstance(status, Finished)
    assert status.exit_code == 137
    assert status.detail.startswith("killed by signal 9 (SIGKILL) (Grid Engine: failed 100")


def test_error_state_fails_the_run_and_deletes_the_job(runs: Runs, tmp_path: Path) -> None:
    ex = SgeExecutor(CONFIG)
    sub = runs.sub("echo never", workdir=tmp_path / "missing")  # qsub -wd: Eqw
    handle = ex.submit(sub)
    status = runs.settle(ex, handle, sub)
    assert isinstance(status, Finished)
    assert status.exit_code == EXIT_NOT_STARTED
    assert "Grid Engine error state Eqw" in status.detail
    assert "missing" in status.detail
    runs.wait_for("the job to be deleted", lambda: not _in_qstat(handle["job_id"]))


def test_adopt_after_a_pass_died_right_after_submit(runs: Runs) -> None:
    ex = SgeExecutor(CONFIG)
    sub = runs.sub("sleep 2; exit 3")
    # the same run seen by a pass that lost the local status directory too: only the
    # cluster can answer, by job name
    elsewhere = replace(sub, status_dir=runs.root / "other-proc")
    assert ex.adopt(sub) is None
    job_id = ex.submit(sub)["job_id"]  # the pass dies here: the handle is never recorded
    expected = {"job_id": job_id, "name": job_name(sub.run_id)}
    assert ex.adopt(sub) == expected  # the next pass looks before it submits: recorded id
    assert ex.adopt(elsewhere) == expected  # by name, from qstat
    assert runs.settle(ex, expected, sub) == Finished(3, detail="exit status 3")
    # still found by name after it ended (qacct)
    runs.wait_for("the ended job by name", lambda: ex.adopt(elsewhere) == expected, timeout=15)


def test_missing_job_waits_for_accounting_then_is_lost(runs: Runs) -> None:
    """A job in neither qstat nor qacct (qacct lags, qstat can come back empty once) is not lost
    until the grace period has passed."""
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    sub = runs.sub("true")
    handle = {"job_id": "987654", "name": job_name(sub.run_id)}
    status = SgeExecutor(CONFIG | {"accounting_grace": 60}, now=lambda: now).poll(handle, sub)
    assert isinstance(status, Running)
    assert "waiting for accounting" in status.detail
    later = SgeExecutor(CONFIG | {"accounting_grace": 60}, now=lambda: now + timedelta(seconds=61))
    status = later.poll(handle, sub)
    assert isinstance(status, Lost)
    assert "987654" in status.reason


def _in_qstat(job_id: str) -> bool:
    out = subprocess.run(["qstat", "-j", job_id], capture_output=True, check=False)
    return out.returncode == 0


def test_a_secret_reaches_the_job_and_no_file_in_the_repository(runs: Runs) -> None:
    batch_checks.secret_reaches_the_job_and_no_file(SgeExecutor(CONFIG), runs)


def test_a_value_cannot_set_qsub_options(runs: Runs) -> None:
    """Grid Engine reads `#$` lines anywhere in a job script, inside quotes too: a parameter
    or variable holding a newline and `#$ -v INJECTED=yes` gave the job options of its own.
    Each exported value is now one line of the script."""
    value = "x\n#$ -v INJECTED=yes\r\n#$ -N injected\ny"
    ex = SgeExecutor(CONFIG)
    command = (
        "printf '%s\\n' \"$EVIL\" | tr '\\n\\r' NR; echo; "
        'echo "injected=${INJECTED:-no} name=$JOB_NAME"'
    )
    sub = runs.sub(command, env={"EVIL": value})
    handle = ex.submit(sub)
    assert runs.settle(ex, handle, sub) == Finished(0, detail="succeeded")
    log = sub.log_path.read_text()
    assert f"injected=no name={job_name(sub.run_id)}" in log
    assert "xN#$ -v INJECTED=yesRN#$ -N injectedNyN" in log  # (the value arrived whole)


def test_an_argument_cannot_set_qsub_options(runs: Runs) -> None:
    """The same through an argv command's argument (placeholders in a list command are
    substituted as they are), and a multi-line command string."""
    ex = SgeExecutor(CONFIG)
    value = "x\n#$ -v INJECTED=yes\ny"
    argv = ("sh", "-c", 'echo "injected=${INJECTED:-no}"; printf "%s" "$1" | wc -l', "-", value)
    multi = 'echo "injected=${INJECTED:-no}"\n#$ -v INJECTED=yes\necho second line'
    for command, expected in ((argv, "2"), (multi, "second line")):
        sub = runs.sub(command)
        assert runs.settle(ex, ex.submit(sub), sub) == Finished(0, detail="succeeded")
        log = sub.log_path.read_text()
        assert "injected=no" in log and expected in log, log
