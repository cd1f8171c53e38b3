"""Synthetic Talon repositories for benchmarks and scale tests.

    python bench/gen_repo.py DIR --jobs 10000 [--files 20] [--cron "0 6 * * *"]
        [--chain trigger|constraint] [--cycle] [--max-parallel N]
        [--history-days 30 --history-jobs 1000 --end 2026-11-27]

Jobs are named `job00000`, `job00001`, ... and spread over `--files` schedule files in order
(so a chain crosses files). Every job runs `true` (or `--command`) in UTC, daily, at `--cron`.

- `--chain trigger`: job 0 has the cron trigger, job i has `trigger: {after: job i-1}`.
- `--chain constraint`: every job has the cron trigger and `constraints: {after: [job i-1]}`.
- `--cycle`: job 0 also waits for the last job, closing the chain into a cycle.

History: for the first `--history-jobs` jobs and each of the `--history-days` days before
`--end` (exclusive), one succeeded run of the 06:00 trigger, written directly as the JSON that
`talon.runs.Run.to_json()` produces (`talon.runs.dumps` layout: indented, stable key order), at
`state/<day>/<job>/<job>@<day>T060000Z.json`. Existing files are left alone, so history can be
grown in steps. Files are not fsynced: this is test data, not a durability test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

DEFAULT_CRON = "0 6 * * *"


def job_name(i: int) -> str:
    return f"job{i:05d}"


def _job_yaml(i: int, n: int, cron: str, chain: str | None, cycle: bool, command: str) -> str:
    lines = [f"  {job_name(i)}:", f"    command: {json.dumps(command)}"]
    waits: list[str] = []
    if chain == "trigger" and i > 0:
        lines.append(f"    trigger: {{after: {job_name(i - 1)}}}")
    else:
        lines.append(f"    trigger: {json.dumps(cron)}")
    if chain == "constraint" and i > 0:
        waits.append(job_name(i - 1))
    if cycle and i == 0 and n > 1:
        waits.append(job_name(n - 1))
    if waits:
        lines.append(f"    constraints: {{after: [{', '.join(waits)}]}}")
    return "\n".join(lines) + "\n"


def write_repo(
    root: Path,
    *,
    jobs: int,
    files: int = 10,
    cron: str = DEFAULT_CRON,
    chain: str | None = None,
    cycle: bool = False,
    command: str = "true",
    max_parallel: int | None = None,
) -> list[Path]:
    """talon.yaml and `files` schedule files holding `jobs` jobs; returns the schedule files.

    Rewrites the configuration in place (earlier schedule files are removed), keeps `state/`.
    """
    root.mkdir(parents=True, exist_ok=True)
    config = ["timezone: UTC", "state: {type: files, path: state}", "defaults: {period: daily}"]
    if max_parallel is not None:
        config.append(f"executors:\n  local: {{type: local, max_parallel: {max_parallel}}}")
    (root / "talon.yaml").write_text("\n".join(config) + "\n", encoding="utf-8")
    schedule = root / "schedule"
    schedule.mkdir(exist_ok=True)
    for old in schedule.glob("bench-*.yaml"):
        old.unlink()
    (root / "state").mkdir(exist_ok=True)
    files = max(1, min(files, jobs))
    per_file = -(-jobs // files)
    written = []
    for f in range(files):
        lo, hi = f * per_file, min(jobs, (f + 1) * per_file)
        if lo >= hi:
            break
        text = "jobs:\n" + "".join(
            _job_yaml(i, jobs, cron, chain, cycle, command) for i in range(lo, hi)
        )
        path = schedule / f"bench-{f:03d}.yaml"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def history_record(job: str, day: date, *, job_hash: str = "0123456789abcdef") -> dict[str, Any]:
    """A succeeded run of the 06:00 UTC trigger on `day`, as `Run.to_json()` lays it out."""
    key = day.isoformat()
    end = (day + timedelta(days=1)).isoformat()
    stamp = day.strftime("%Y%m%d")
    at = f"{key}T06:00:00+00:00"
    started = f"{key}T06:00:01+00:00"
    finished = f"{key}T06:00:05+00:00"
    return {
        "id": f"{job}@{stamp}T060000Z",
        "job": job,
        "state": "succeeded",
        "reason": None,
        "period": {
            "type": "daily",
            "key": key,
            "start": f"{key}T00:00:00+00:00",
            "end": f"{end}T00:00:00+00:00",
        },
        "trigger": {"type": "cron", "at": at},
        "attempt": 1,
        "created": at,
        "started": started,
        "finished": finished,
        "exit_code": 0,
        "executor": {
            "name": "local",
            "type": "local",
            "handle": {
                "pid": 4242,
                "start": 1234567,
                "boot": "00000000-0000-0000-0000-000000000000",
                "rc_file": f"/srv/repo/state/.talon/proc/{job}.{job}@{stamp}T060000Z.0.rc",
                "submitted": 0.0,
                "timeout_s": None,
            },
        },
        "dispatch": {"at": started, "by": "bench:4242"},
        "resources": [],
        "params": {},
        "progress": None,
        "artifacts": [],
        "checks": [],
        "revision": None,
        "job_hash": job_hash,
        "history": [
            {"at": at, "state": "blocked", "reason": "created, constraints not yet checked"},
            {"at": at, "state": "ready", "reason": None},
            {"at": started, "state": "running", "reason": None},
            {"at": finished, "state": "succeeded", "reason": None},
        ],
    }


def history_text(job: str, day: date) -> str:
    """The file text, exactly as `talon.runs.dumps` writes it."""
    from talon.runs import Run, dumps

    return dumps(Run.from_json(history_record(job, day)))


def write_history(state: Path, jobs: Iterable[str], days: Sequence[date]) -> int:
    """One succeeded run per (job, day); returns how many files were created."""
    # One template, filled by replacement: json.dumps per file would double the cost.
    template = history_text("@JOB@", date(2000, 1, 1))
    tokens = ("2000-01-02", "2000-01-01", "20000101")
    created = 0
    job_list = list(jobs)
    for day in days:
        values = ((day + timedelta(days=1)).isoformat(), day.isoformat(), day.strftime("%Y%m%d"))
        day_text = template
        for token, value in zip(tokens, values, strict=True):
            day_text = day_text.replace(token, value)
        ddir = state / day.isoformat()
        os.makedirs(ddir, exist_ok=True)
        for job in job_list:
            jdir = ddir / job
            with contextlib.suppress(FileExistsError):
                os.mkdir(jdir)
            path = jdir / f"{job}@{values[2]}T060000Z.json"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            try:
                os.write(fd, day_text.replace("@JOB@", job).encode())
            finally:
                os.close(fd)
            created += 1
    return created


def past_days(end: date, count: int, skip: int = 0) -> list[date]:
    """`count` days before `end` (exclusive), newest first, after skipping the `skip` newest."""
    return [end - timedelta(days=d) for d in range(1 + skip, 1 + skip + count)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--cron", default=DEFAULT_CRON)
    parser.add_argument("--chain", choices=["trigger", "constraint"])
    parser.add_argument("--cycle", action="store_true")
    parser.add_argument("--command", default="true")
    parser.add_argument("--max-parallel", type=int)
    parser.add_argument("--history-days", type=int, default=0)
    parser.add_argument("--history-jobs", type=int, help="default: every job")
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 11, 27))
    args = parser.parse_args(argv)
    write_repo(
        args.directory,
        jobs=args.jobs,
        files=args.files,
        cron=args.cron,
        chain=args.chain,
        cycle=args.cycle,
        command=args.command,
        max_parallel=args.max_parallel,
    )
    if args.history_days:
        with_history = args.jobs if args.history_jobs is None else args.history_jobs
        n = write_history(
            args.directory / "state",
            [job_name(i) for i in range(with_history)],
            past_days(args.end, args.history_days),
        )
        print(f"{n} run files of history")
    return 0


if __name__ == "__main__":
    sys.exit(main())
