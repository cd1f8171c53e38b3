"""The `slurm` executor: Slurm through its command line (sbatch, squeue, scontrol, sacct, scancel).

Configuration (the executor's mapping in talon.yaml):

    partition         `-p` partition (default: the cluster's default)
    sbatch_args       extra sbatch arguments, a list or one string (split like a shell would)
    accounting_grace  seconds a finished job may be unknown to scontrol and sacct before it is
                      lost; default 60
    command_timeout   seconds for each sbatch/squeue/scontrol/sacct/scancel call; default 30
    kill_grace        seconds between SIGTERM and SIGKILL when the run times out; default 10

A run is submitted as `sbatch --parsable -J talon-<run id> -o <log> --chdir <dir>` with a
generated wrapper script (talon.executors.remote) on stdin - never a file in the repository, since
it exports the run's environment, secrets too. The wrapper enforces the timeout and writes
pid/rc into the run's own directory `<sub.status_dir>/slurm-<run id>/` (visible to the compute
nodes, like the log). The job id is also written there right after sbatch, for adopt().

Handle: {"job_id": "42", "name": "talon-<run id>"}.

Poll: `squeue` lists it -> Running; otherwise the end state from `scontrol show job` (kept for
MinJobAge after the end), else `sacct` (when accounting storage is configured), else the
wrapper's rc file; none of them -> Running("waiting for accounting") until accounting_grace has
passed, then Lost. Exit codes: ExitCode=rc:signal gives rc, or 128+signal; CANCELLED without a
code is 143 (SIGTERM), TIMEOUT 124, OUT_OF_MEMORY 137.
"""

from __future__ import annotations

import subprocess

from talon.executors.base import Finished, Handle, Running, Status, Submission
from talon.executors.remote import (
    EXIT_TIMED_OUT,
    BatchSettings,
    Since,
    arg_list,
    describe_exit,
    job_name,
    read_local_status,
    run_state_dir,
    submit_batch,
)

_MISSING_SINCE = "slurm-missing-since"
_TRANSIENT = ("unable to contact slurm controller", "socket timed out", "connection refused")
_PENDING_OR_RUNNING = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "STAGE_OUT")
# end states whose exit code is 0:0 although the job did not succeed
_DEFAULT_CODE = {"CANCELLED": 143, "TIMEOUT": EXIT_TIMED_OUT, "OUT_OF_MEMORY": 137}


class SlurmExecutor(BatchSettings):
    """Submits each run as a Slurm batch job (see the module docstring)."""

    # -- the Executor protocol

    def submit(self, sub: Submission) -> Handle:
        name, workdir, state, script = self.prepare(sub, "slurm", "SLURM_JOB_ID")
        argv = ["sbatch", "--parsable", "-J", name, "-o", str(sub.log_path)]
        argv += ["--chdir", workdir]
        options = {**self.config, **sub.config}  # sub.config: placeholders substituted
        if options.get("partition"):
            argv += ["-p", str(options["partition"])]
        argv += arg_list(options.get("sbatch_args"))  # no script file: sbatch reads it on stdin
        return submit_batch(
            self._cmd,
            argv,
            script,
            parse_id=lambda out: out.split(";")[0],  # "42" or "42;cluster"
            transient=_TRANSIENT,
            state=state,
            name=name,
        )

    def poll(self, handle: Handle, sub: Submission) -> Status:
        job_id = str(handle["job_id"])
        state = run_state_dir(sub, "slurm")
        missing = Since(state, _MISSING_SINCE)
        out = self._cmd(["squeue", "-h", "-j", job_id, "-o", "%T"])
        queued = out.stdout.strip()
        if out.returncode != 0 and "invalid job id" not in out.stderr.lower():
            return Running(detail=f"squeue failed, status unknown: {out.stderr.strip()}")
        if queued in _PENDING_OR_RUNNING:
            missing.clear()
            return Running(detail=f"job {job_id} {queued.lower()}")
        local = read_local_status(state)
        end = self._scontrol(job_id) or self._sacct(job_id)
        if end is None and local.exit_code is not None:
            end = ("", local.exit_code)  # the wrapper recorded it
        if end is not None:
            missing.clear()
            end_state, code = end
            detail = describe_exit(code, timed_out=local.timed_out, cancelled=local.cancelled)
            if end_state and end_state not in ("COMPLETED", "FAILED"):
                detail += f" (Slurm: {end_state})"
            return Finished(code, detail=detail)
        return self.gone_from_queue(
            missing,
            f"job {job_id} left squeue; waiting for its end state",
            f"Slurm job {job_id} is unknown to squeue, scontrol and sacct "
            "{waited}s after it left the queue",
        )

    def cancel(self, handle: Handle, sub: Submission) -> None:
        self.mark_cancelled(sub, "slurm")
        job_id = str(handle["job_id"])
        out = self._cmd(["scancel", job_id])
        err = out.stderr.lower()
        if out.returncode != 0 and "invalid job id" not in err and "already" not in err:
            raise ConnectionError(f"scancel {job_id} failed: {out.stderr.strip()}")

    def adopt(self, sub: Submission) -> Handle | None:
        """The job id recorded right after sbatch, else the newest job named talon-<run id>
        that slurmctld still knows (any state)."""
        name = job_name(sub.run_id)
        recorded = read_local_status(run_state_dir(sub, "slurm")).job_id
        if recorded and recorded.isdigit():
            return {"job_id": recorded, "name": name}
        out = self._cmd(["squeue", "-h", "-t", "all", "-n", name, "-o", "%i"])
        ids = [i for i in out.stdout.split() if i.isdigit()] if out.returncode == 0 else []
        if not ids:
            return None
        return {"job_id": max(ids, key=int), "name": name}

    # -- Slurm commands

    def _cmd(self, argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.command_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            if argv[0] == "sbatch":
                raise
            return subprocess.CompletedProcess(argv, 1, "", f"no answer in {e.timeout}s")

    def _scontrol(self, job_id: str) -> tuple[str, int] | None:
        """(JobState, exit code) while slurmctld remembers the job (MinJobAge)."""
        out = self._cmd(["scontrol", "show", "job", "-o", job_id])
        if out.returncode != 0:
            return None
        fields = dict(
            word.split("=", 1) for word in out.stdout.split() if "=" in word and word[0].isupper()
        )
        state = fields.get("JobState", "")
        if not state or state in _PENDING_OR_RUNNING:
            return None
        return state, _exit_code(state, fields.get("ExitCode", ""))

    def _sacct(self, job_id: str) -> tuple[str, int] | None:
        """(State, exit code) from accounting storage, when the cluster has it."""
        out = self._cmd(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State,ExitCode"])
        if out.returncode != 0:
            return None
        for line in out.stdout.splitlines():
            state, _, code = line.partition("|")
            state = state.split(" ")[0]  # "CANCELLED by 0"
            if state and state not in _PENDING_OR_RUNNING:
                return state, _exit_code(state, code)
        return None


def _exit_code(state: str, code: str) -> int:
    """Slurm's "rc:signal" as one exit status: 128+signal for a signal, else rc."""
    rc_text, _, sig_text = code.partition(":")
    rc = int(rc_text) if rc_text.isdigit() else 0
    sig = int(sig_text) if sig_text.isdigit() else 0
    if sig:
        return 128 + sig
    if rc == 0 and state != "COMPLETED":
        return _DEFAULT_CODE.get(state, 1)
    return rc
