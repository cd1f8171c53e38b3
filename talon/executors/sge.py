"""The `sge` executor: Grid Engine through its command line (qsub, qstat, qacct, qdel).

Configuration (the executor's mapping in talon.yaml):

    queue             `-q` queue (default: the cluster's default)
    qsub_args         extra qsub arguments, a list or one string (split like a shell would)
    accounting_grace  seconds a job may be missing from both qstat and qacct before it is lost
                      (qacct lags a finished job; default 60)
    command_timeout   seconds for each qsub/qstat/qacct/qdel call; default 30
    kill_grace        seconds between SIGTERM and SIGKILL when the run times out; default 10

A run is submitted as `qsub -terse -N talon-<run id> -o <log> -j y -wd <dir> -S /bin/sh` with a
generated wrapper script on stdin (never `-b y`, which re-splits arguments; never a file in the
repository, since the script exports the run's environment, secrets too). The wrapper
(talon.executors.remote) enforces the timeout and writes pid/rc into the run's own directory
`<sub.status_dir>/sge-<run id>/`, which must be visible to the execution hosts, as the log must be.
The job id is also written there right after qsub, for adopt().

Handle: {"job_id": "42", "name": "talon-<run id>"}.

Poll: in qstat -> Running (an error state such as `Eqw` -> the job is deleted and the run is
Finished(125) with Grid Engine's error reason); gone from qstat -> the exit status from qacct
(`failed` explained in the detail), or else from the wrapper's rc file; neither -> Running
("waiting for accounting") until accounting_grace has passed since the job was first missed,
then Lost. A job deleted behind Talon's back (qdel) therefore ends Finished(137).
"""

from __future__ import annotations

import getpass
import os
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from talon.executors.base import Finished, Handle, Running, Status, Submission
from talon.executors.remote import (
    EXIT_NOT_STARTED,
    BatchSettings,
    Since,
    arg_list,
    describe_exit,
    job_name,
    read_local_status,
    run_state_dir,
    submit_batch,
)

_MISSING_SINCE = "sge-missing-since"
# qsub's complaints that mean "the cluster is not answering now" rather than "this job is wrong"
_TRANSIENT = ("unable to contact qmaster", "commlib error", "unable to send message", "timeout")


@dataclass(frozen=True)
class QueuedJob:
    job_id: str
    name: str
    state: str  # qstat's letters: qw, r, t, Eqw, dr, ...


@dataclass(frozen=True)
class Accounting:
    exit_status: int
    failed: str  # "0", or e.g. "100 : assumedly after job"


class SgeExecutor(BatchSettings):
    """Submits each run as a Grid Engine job (see the module docstring)."""

    # -- the Executor protocol

    def submit(self, sub: Submission) -> Handle:
        name, workdir, state, script = self.prepare(sub, "sge", "JOB_ID")
        argv = ["qsub", "-terse", "-N", name, "-o", str(sub.log_path), "-j", "y"]
        argv += ["-wd", workdir, "-S", "/bin/sh"]
        options = {**self.config, **sub.config}  # sub.config: placeholders substituted
        if options.get("queue"):
            argv += ["-q", str(options["queue"])]
        argv += arg_list(options.get("qsub_args"))  # no script file: qsub reads it on stdin
        # "42", or "5.1-3:1" for an array job
        return submit_batch(
            self._cmd,
            argv,
            script,
            parse_id=lambda out: out.split(".")[0],
            transient=_TRANSIENT,
            state=state,
            name=name,
        )

    def poll(self, handle: Handle, sub: Submission) -> Status:
        job_id, name = str(handle["job_id"]), str(handle["name"])
        state = run_state_dir(sub, "sge")
        missing = Since(state, _MISSING_SINCE)
        try:
            queued = self._qstat()
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            return Running(detail=f"qstat failed, status unknown: {e}")
        job = queued.get(job_id)
        if job is not None and job.name == name:
            missing.clear()
            if "E" in job.state:
                reason = self._error_reason(job_id)
                self._qdel(job_id)
                return Finished(
                    EXIT_NOT_STARTED,
                    detail=f"Grid Engine error state {job.state}: {reason}; job {job_id} deleted",
                )
            return Running(detail=f"job {job_id} {job.state}")
        return self._ended(job_id, name, state, missing)

    def _ended(self, job_id: str, name: str, status_dir: Path, missing: Since) -> Status:
        """A job gone from qstat: accounting, else the wrapper's rc file, else wait and see."""
        acct = self._qacct(job_id, name)
        local = read_local_status(status_dir)
        if acct is not None:
            missing.clear()
            detail = describe_exit(
                acct.exit_status, timed_out=local.timed_out, cancelled=local.cancelled
            )
            if acct.failed not in ("0", ""):
                detail += f" (Grid Engine: failed {acct.failed})"
            return Finished(acct.exit_status, detail=detail)
        if local.exit_code is not None:  # the wrapper recorded it; accounting has not caught up
            missing.clear()
            detail = describe_exit(
                local.exit_code, timed_out=local.timed_out, cancelled=local.cancelled
            )
            return Finished(local.exit_code, detail=detail)
        return self.gone_from_queue(
            missing,
            f"job {job_id} left qstat; waiting for accounting ({{waited}}s)",
            f"Grid Engine job {job_id} is neither queued nor in the accounting "
            "{waited}s after it left qstat",
        )

    def cancel(self, handle: Handle, sub: Submission) -> None:
        self.mark_cancelled(sub, "sge")
        self._qdel(str(handle["job_id"]))

    def adopt(self, sub: Submission) -> Handle | None:
        """The job id recorded right after qsub, else the newest job named talon-<run id>,
        queued or already finished."""
        name = job_name(sub.run_id)
        recorded = read_local_status(run_state_dir(sub, "sge")).job_id
        if recorded and recorded.isdigit():
            return {"job_id": recorded, "name": name}
        try:
            queued = [j.job_id for j in self._qstat().values() if j.name == name]
        except (OSError, subprocess.SubprocessError, ValueError):
            return None  # qmaster not answering: a submit now would be refused as well
        if not queued:
            queued = self._qacct_ids(name)
        if not queued:
            return None
        return {"job_id": max(queued, key=int), "name": name}

    # -- Grid Engine commands

    def _cmd(self, argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=self.command_timeout,
            check=False,
            env=os.environ | {"SGE_SINGLE_LINE": "1"},
        )

    def _qstat(self) -> dict[str, QueuedJob]:
        """Our user's jobs, by id. Raises on any failure: an empty answer from a failing qstat
        must never read as "the job is gone"."""
        out = self._cmd(["qstat", "-xml", "-u", getpass.getuser()])
        if out.returncode != 0:
            raise OSError(out.stderr.strip() or f"qstat exited {out.returncode}")
        root = ET.fromstring(out.stdout)  # noqa: S314 - our own qmaster's answer
        jobs: dict[str, QueuedJob] = {}
        for el in root.iter("job_list"):
            job_id = (el.findtext("JB_job_number") or "").strip()
            if job_id:
                name = (el.findtext("JB_name") or "").strip()
                jobs[job_id] = QueuedJob(job_id, name, (el.findtext("state") or "").strip())
        return jobs

    def _error_reason(self, job_id: str) -> str:
        out = self._cmd(["qstat", "-j", job_id])
        reasons = [
            line.split(":", 1)[1].strip() if ":" in line else line
            for line in out.stdout.splitlines()
            if line.startswith("error reason")
        ]
        return "; ".join(reasons) or "no reason given"

    def _qacct(self, job_id: str, name: str) -> Accounting | None:
        """The accounting record of this job (the last one with our name: job ids restart
        after a reinstall), or None when there is none yet."""
        out = self._cmd(["qacct", "-j", job_id])
        if out.returncode != 0:
            return None
        found: Accounting | None = None
        for record in _records(out.stdout):
            status = record.get("exit_status", "").split(" ")[0]  # "137   (Killed)"
            if record.get("jobname") == name and status.isdigit():
                found = Accounting(int(status), record.get("failed", ""))
        return found

    def _qacct_ids(self, name: str) -> list[str]:
        out = self._cmd(["qacct", "-j", name])
        if out.returncode != 0:
            return []
        return [r["jobnumber"] for r in _records(out.stdout) if r.get("jobnumber", "").isdigit()]

    def _qdel(self, job_id: str) -> None:
        out = self._cmd(["qdel", job_id])
        err = (out.stderr + out.stdout).lower()
        if out.returncode != 0 and "does not exist" not in err:
            raise ConnectionError(f"qdel {job_id} failed: {err.strip()}")


def _records(text: str) -> list[dict[str, str]]:
    """qacct's output: records separated by ===== lines, each "key   value" per line."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("====="):
            if current:
                records.append(current)
            current = {}
            continue
        key, _, value = line.partition(" ")
        if key:
            current[key] = value.strip()
    if current:
        records.append(current)
    return records
