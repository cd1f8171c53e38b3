"""`talon reconcile` at scale, each figure against a baseline measured in the same run.

    python bench/bench_reconcile.py [--quick] [--repeat N] [--shm DIR] [--only 1,2,3]

1. No-op pass (nothing due: daily jobs at 06:00, a first pass at 11:00, then passes at 12:00)
   on 1,000 and 10,000 jobs with 30 and 365 days of history, against `python -c pass`.
   Targets: < 60 ms (1k), < 150 ms (10k), peak RSS < 60 MB (10k).
2. 500 runs of `true` due at once, one `talon reconcile --wait`, against a plain Python loop
   that spawns `true` and writes one fsynced JSON record per run in a directory of its own,
   two workers (ThreadPoolExecutor(2)). Targets: within 1.5x, peak RSS < 40 MB.
3. A chain of 200 jobs (`trigger: {after: previous}`, and again with `constraints: {after}`)
   inside one `talon reconcile --wait`, against the same loop run sequentially. Target 1.5x.

Every figure is the wall time of a subprocess (median of --repeat) and its peak RSS from
`os.wait4`, measured by a small process that starts it (a child's peak starts at its parent's
size), each after a sync; the directories on disk are deleted only at the end (see `run`).

Bench 1 keeps its repository in tmpfs (`--shm`, default /dev/shm when it exists): a year of
history is hundreds of thousands of files, and on this machine's disk creating and deleting
them takes minutes (deleting 300k files took 2.5 min). The pass never reads that history, so
where it lies should not matter; the "control" rows (no history, disk against tmpfs) check
that. Benches 2 and 3 run on disk (the system temp directory), where fsync costs what it costs.

Commands run with a bytecode cache (in a private PYTHONPYCACHEPREFIX, warmed up first), as an
installed `talon` has, even when the caller sets PYTHONDONTWRITEBYTECODE; one row shows the
no-op pass without it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path

from gen_repo import job_name, past_days, write_history, write_repo

TALON = str(Path(sys.executable).with_name("talon"))
DAY = "2026-11-27"
FIRST = f"{DAY}T11:00:00+00:00"  # first pass: every job's window starts, nothing fires
NOOP = f"{DAY}T12:00:00+00:00"  # nothing due until tomorrow 06:00
BEFORE = f"{DAY}T05:59:00+00:00"  # first pass before the 06:00 trigger
DUE = f"{DAY}T06:00:30+00:00"  # the 06:00 trigger is due


@dataclass(frozen=True)
class Measure:
    wall_ms: float
    rss_mb: float
    out: str


class CommandFailed(Exception):
    pass


def run(
    argv: Sequence[str], *, check_quiet: bool = False, env: dict[str, str] | None = None
) -> Measure:
    """Wall time and peak RSS of one command (its own rusage from wait4, not the sum; started
    from a small process, `_TIMED`), after a sync. ext4 without a journal (as on the
    development machine) does not reuse an inode freed in the last minute, or the last five
    while its inode table block is not written back: every file creation skips those one by
    one (`recently_deleted`). The harness keeps its files until the end (`scratch`) so that no
    command pays for the harness's own deletions; the sync shortens the window left by
    whatever ran before (the test suite). Floors and Talon alike."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as report,
    ):
        os.sync()
        timed = subprocess.run(
            [sys.executable, "-c", _TIMED, report.name, *argv],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            check=False,
        )
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode(), err.read().decode()
        measured = report.read().split()
    if timed.returncode != 0 or len(measured) != 3:
        raise CommandFailed(f"{' '.join(argv)}: could not be started:\n{errors}")
    wall_ns, maxrss_kb, code = (int(x) for x in measured)
    if code != 0:
        raise CommandFailed(f"{' '.join(argv)} exited {code}:\n{errors}{text}")
    if check_quiet and text.strip():
        raise CommandFailed(f"{' '.join(argv)}: expected a no-op pass, got:\n{text[:2000]}")
    return Measure(wall_ns / 1e6, maxrss_kb / 1024, text)


# Runs one command and writes its wall time, peak RSS and exit status to a file. A child's peak
# RSS starts at its parent's size (the kernel records the old memory's high-water mark at
# exec), so the command is started from this small process, not from the bench's, which grows
# to ~28 MB in bench 1 and made every later floor read 27.5 MB. This one's own ~10.6 MB stays:
# no figure reads less (main prints it, as what `true` reads).
_TIMED = """
import os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter_ns()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter_ns() - t0
with open(report, "w") as f:
    f.write(f"{wall} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


_SCRATCH: list[str] = []


def scratch(prefix: str) -> str:
    """A new directory on disk, deleted when the bench is over (see `run`), not before."""
    path = tempfile.mkdtemp(prefix=prefix)
    _SCRATCH.append(path)
    return path


def repeat(
    argv: Sequence[str], n: int, *, check_quiet: bool = False, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """(median wall ms, max peak RSS MB) over n runs."""
    runs = [run(argv, check_quiet=check_quiet, env=env) for _ in range(n)]
    return statistics.median(m.wall_ms for m in runs), max(m.rss_mb for m in runs)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(
    label: str, ms: float, base_ms: float, target: str, ok: bool | None, rss: float | None = None
) -> None:
    mem = f"  peak {rss:5.1f} MB" if rss is not None else ""
    tail = f"  target {target:<10} {verdict(ok)}" if ok is not None else ""
    print(f"  {label:<54} {ms:8.1f} ms  x{ms / base_ms:6.2f}{mem}{tail}", flush=True)


def memory(label: str, rss: float, limit: float) -> None:
    ok = rss < limit
    print(f"  {label:<54} {rss:8.1f} MB   target < {limit:.0f} MB  {verdict(ok)}", flush=True)


# --- 1. no-op pass ----------------------------------------------------------------------------


def first_pass(root: Path, now: str = FIRST) -> float:
    return run([TALON, "-C", str(root), "reconcile", "--now", now]).wall_ms


def noop(root: Path, n: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    argv = [TALON, "-C", str(root), "reconcile", "--now", NOOP]
    return repeat(argv, n, check_quiet=True, env=env)


def bench_noop(args: argparse.Namespace, base_ms: float) -> None:
    small, big = (1000, 3000) if args.quick else (1000, 10000)
    short, long = (30, 120) if args.quick else (30, 365)
    n = args.repeat_noop
    print(
        f"\n[1] no-op `talon reconcile` (daily jobs at 06:00, first pass 11:00, no-op at 12:00), "
        f"median of {n}"
    )
    print(f"  {'python -c pass (baseline)':<54} {base_ms:8.1f} ms")
    today = date.fromisoformat(DAY)
    shm = Path(args.shm) if args.shm else None
    with tempfile.TemporaryDirectory(prefix="talon-bench-", dir=shm) as fast:  # (tmpfs)
        slow = scratch("talon-bench-")
        # Control: no history, on disk and in the bench directory (tmpfs).
        disk = Path(slow) / "repo"
        write_repo(disk, jobs=small, files=10)
        first_pass(disk)
        ms, rss = noop(disk, n)
        report(f"{small:,} jobs, no history, on disk (control)", ms, base_ms, "", None, rss)
        root = Path(fast) / "repo"
        write_repo(root, jobs=small, files=10)
        cold = first_pass(root)
        ms, rss = noop(root, n)
        where = "tmpfs" if shm else "disk"
        report(f"{small:,} jobs, no history, {where}", ms, base_ms, "", None, rss)
        print(f"    (first pass, parsing {small:,} job definitions: {cold:.0f} ms)")
        no_pyc = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        no_pyc.pop("PYTHONPYCACHEPREFIX", None)
        ms, rss = noop(root, n, env=no_pyc)
        report(f"{small:,} jobs, no history, without .pyc files", ms, base_ms, "", None, rss)

        state = root / "state"
        jobs_small = [job_name(i) for i in range(small)]
        made = write_history(state, jobs_small, past_days(today, short))
        ms, rss = noop(root, n)
        report(
            f"{small:,} jobs, {short} days of history ({made:,} runs)",
            ms,
            base_ms,
            "< 60 ms",
            ms < 60,
            rss,
        )
        # The index rebuild (a fresh clone, or a lost index) is the one full scan. Without the
        # quiet record too, or the no-op shortcut would answer without looking. A rebuilt
        # cursor restarts at the newest run in the history (yesterday's), so today's 06:00 is
        # caught up: those runs are left to finish before the next figure.
        for name in ("index.json", "index.log", "quiet.json"):
            (state / ".talon" / name).unlink(missing_ok=True)
        rebuild = run(
            [TALON, "-C", str(root), "reconcile", "--now", f"{DAY}T11:58:00+00:00"]
        ).wall_ms
        print(
            f"    (pass without index.json, rebuilt by a full scan of {made:,} run files: "
            f"{rebuild:.0f} ms, {1000 * (rebuild - ms) / made:.1f} us per file, "
            "catch-up runs included)"
        )
        # Before NOOP: the clock of a --wait moves on, and a pass at an earlier time than the
        # last one is never a no-op (it warns about the clock instead).
        run([TALON, "-C", str(root), "reconcile", "--wait", "--now", f"{DAY}T11:59:00+00:00"])
        t0 = time.perf_counter()
        made += write_history(state, jobs_small, past_days(today, long - short, skip=short))
        gen_s = time.perf_counter() - t0
        ms, rss = noop(root, n)
        report(
            f"{small:,} jobs, {long} days of history ({made:,} runs)",
            ms,
            base_ms,
            "< 60 ms",
            ms < 60,
            rss,
        )

        write_repo(root, jobs=big, files=20)
        cold = first_pass(root)
        t0 = time.perf_counter()
        jobs_rest = [job_name(i) for i in range(small, big)]
        made += write_history(state, jobs_rest, past_days(today, short))
        gen_s += time.perf_counter() - t0
        ms, rss_big = noop(root, n)
        report(
            f"{big:,} jobs, {long} d on {small:,}, {short} d on the rest ({made:,} runs)",
            ms,
            base_ms,
            "< 150 ms",
            ms < 150,
            rss_big,
        )
        print(f"    (first pass, parsing {big:,} job definitions: {cold:.0f} ms)")
        t0 = time.perf_counter()
        for day in past_days(today, long - short, skip=short):
            shutil.rmtree(state / day.isoformat())
        made = big * short
        gen_s += time.perf_counter() - t0
        ms, rss = noop(root, n)
        rss_big = max(rss, rss_big)
        report(
            f"{big:,} jobs, {short} days of history ({made:,} runs)",
            ms,
            base_ms,
            "< 150 ms",
            ms < 150,
            rss,
        )
        memory(f"peak RSS, {big:,} jobs", rss_big, 60)
        print(f"    (generating and pruning history took {gen_s:.1f} s)")


# --- 2 and 3: runs of `true`, against a loop that does the least a scheduler must -------------

FLOOR = r"""
import json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
root, n, workers, per_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
def one(i):
    rc = subprocess.run(["true"]).returncode
    d = os.path.join(root, f"run{i:05d}") if per_dir else root
    if per_dir:
        os.mkdir(d)
    fd = os.open(os.path.join(d, f"run{i:05d}.json"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, json.dumps({"id": i, "state": "succeeded", "exit_code": rc}).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
if workers > 1:
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, range(n)))
else:
    for i in range(n):
        one(i)
"""


def floor(n: int, workers: int, per_dir: bool, repeats: int) -> tuple[float, float]:
    run([sys.executable, "-c", FLOOR, scratch("talon-floor-"), "1", str(workers), "0"])  # .pyc
    walls, rss = [], 0.0
    for _ in range(repeats):
        tmp = scratch("talon-floor-")
        m = run([sys.executable, "-c", FLOOR, tmp, str(n), str(workers), "1" if per_dir else "0"])
        walls.append(m.wall_ms)
        rss = max(rss, m.rss_mb)
    return statistics.median(walls), rss


@dataclass(frozen=True)
class WaitResult:
    wall_ms: float
    rss_mb: float
    files: int
    dirs: int
    created_files: int
    created_dirs: int
    kinds: dict[str, int]


def count(state: Path) -> tuple[int, int, dict[str, int]]:
    files = dirs = 0
    kinds: dict[str, int] = {}
    for here, subdirs, names in os.walk(state):
        dirs += len(subdirs)
        files += len(names)
        rel = Path(here).relative_to(state).parts
        for name in names:
            if rel[:1] == (".talon",):
                kind = f".talon/{rel[1]}/*" if len(rel) > 1 else f".talon/{name}"
            elif name.endswith(".json"):
                kind = "run files"
            elif name.endswith(".log"):
                kind = "logs"
            else:
                kind = "other"
            kinds[kind] = kinds.get(kind, 0) + 1
    return files, dirs, kinds


ERRORS: list[str] = []


def talon_wait(
    label: str, make: Callable[[Path], object], expect: int, repeats: int
) -> WaitResult | None:
    """The --wait pass over a fresh repository, `repeats` times; None (reported) on failure."""
    try:
        return _talon_wait(make, expect, repeats)
    except CommandFailed as exc:
        lines = str(exc).splitlines()
        tail = lines[-1] if lines else ""
        why = f"{lines[0][-160:] if lines else ''} ... {tail[:200]}..."
        print(f"  {label:<54} ERROR: {why}", flush=True)
        ERRORS.append(label)
        return None


def _talon_wait(make: Callable[[Path], object], expect: int, repeats: int) -> WaitResult:
    walls, rss = [], 0.0
    result: WaitResult | None = None
    for _ in range(repeats):
        root = Path(scratch("talon-bench-")) / "repo"
        make(root)
        first_pass(root, BEFORE)
        f0, d0, _ = count(root / "state")
        m = run([TALON, "-C", str(root), "reconcile", "--wait", "--now", DUE])
        succeeded = sum(1 for line in m.out.splitlines() if line.startswith("succeed"))
        if succeeded != expect:
            raise CommandFailed(f"expected {expect} runs to succeed, saw {succeeded}")
        files, dirs, kinds = count(root / "state")
        walls.append(m.wall_ms)
        rss = max(rss, m.rss_mb)
        result = WaitResult(0, 0, files, dirs, files - f0, dirs - d0, kinds)
    assert result is not None
    return WaitResult(
        statistics.median(walls),
        rss,
        result.files,
        result.dirs,
        result.created_files,
        result.created_dirs,
        result.kinds,
    )


def bench_many(args: argparse.Namespace) -> None:
    n = 100 if args.quick else 500
    reps = args.repeat_wait
    print(f"\n[2] {n} runs of `true` due at once, one `talon reconcile --wait`, median of {reps}")
    base, base_rss = floor(n, 2, True, reps)
    strict, _ = floor(n, 2, False, reps)
    print(
        f"  {'floor: 2 workers, spawn + fsynced record, dir each':<54} {base:8.1f} ms"
        f"  peak {base_rss:5.1f} MB (baseline)"
    )
    print(f"  {'floor: the same, all records in one directory':<54} {strict:8.1f} ms")
    label = "talon reconcile --wait (no max_parallel)"
    res = talon_wait(label, partial(write_repo, jobs=n, files=5), n, reps)
    if res is None:
        return
    report(
        label,
        res.wall_ms,
        base,
        "1.5x",
        res.wall_ms <= 1.5 * base,
        res.rss_mb,
    )
    print(
        f"    {res.wall_ms / n:.2f} ms per run (floor {base / n:.2f}); "
        f"x{res.wall_ms / strict:.2f} the one-directory floor"
    )
    memory(f"peak RSS, {n} runs", res.rss_mb, 40)
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(res.kinds.items()))
    print(
        f"    state/ after: {res.files} files, {res.dirs} dirs ({kinds})\n"
        f"    created by the --wait pass: {res.created_files} files, {res.created_dirs} dirs "
        f"= {res.created_files / n:.2f} files + {res.created_dirs / n:.2f} dirs per run "
        "(not counting temp files renamed over run files)"
    )
    # The same concurrency as the floor: fewer runs, this costs a pass per pair of runs.
    m = min(n, 100)
    small, _ = floor(m, 2, True, 1)
    label = f"the same with max_parallel: 2 ({m} runs, once)"
    res = talon_wait(label, partial(write_repo, jobs=m, files=5, max_parallel=2), m, 1)
    if res is None:
        return
    report(
        label,
        res.wall_ms,
        small,
        "(info)",
        None,
        res.rss_mb,
    )
    print(f"    {res.wall_ms / m:.2f} ms per run (floor {small / m:.2f})")


def bench_chain(args: argparse.Namespace) -> None:
    n = 50 if args.quick else 200
    reps = args.repeat_wait
    print(f"\n[3] a chain of {n} jobs inside one `talon reconcile --wait`, median of {reps}")
    base, base_rss = floor(n, 1, True, reps)
    print(
        f"  {'floor: sequential spawn + fsynced record':<54} {base:8.1f} ms"
        f"  peak {base_rss:5.1f} MB (baseline)"
    )
    for form in ("trigger", "constraint"):
        label = f"chain by `{form}: after`"
        res = talon_wait(label, partial(write_repo, jobs=n, files=4, chain=form), n, reps)
        if res is None:
            continue
        report(
            label,
            res.wall_ms,
            base,
            "1.5x",
            res.wall_ms <= 1.5 * base,
            res.rss_mb,
        )
        print(f"    {res.wall_ms / n:.2f} ms per link (floor {base / n:.2f} ms)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--repeat", type=int, help="runs per figure (default 7, quick 3)")
    shm = Path("/dev/shm")  # noqa: S108 - tmpfs on purpose, for a private temp dir inside it
    default_shm = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    parser.add_argument("--shm", default=default_shm, help="where bench 1 builds its repository")
    parser.add_argument("--only", default="1,2,3", help="which benches, e.g. 1,3")
    args = parser.parse_args(argv)
    args.repeat_noop = args.repeat or (3 if args.quick else 7)
    args.repeat_wait = max(1, (args.repeat or (1 if args.quick else 3)))
    which = set(args.only.split(","))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="talon-bench-pyc-") as pyc:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = pyc
        for warm in ([sys.executable, "-c", "pass"], [TALON, "--help"]):
            run(warm)
        base_ms, _ = repeat([sys.executable, "-c", "pass"], 15)
        print(
            f"(peak RSS figures read at least {run(['true']).rss_mb:.1f} MB, what `true` reads: "
            "the size of the small process that measures them)"
        )
        try:
            code = run_benches(args, which, base_ms)
        finally:
            for path in _SCRATCH:
                shutil.rmtree(path, ignore_errors=True)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    return code


def run_benches(args: argparse.Namespace, which: set[str], base_ms: float) -> int:
    try:
        if "1" in which:
            bench_noop(args, base_ms)
        if "2" in which:
            bench_many(args)
        if "3" in which:
            bench_chain(args)
    except CommandFailed as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    if ERRORS:
        print(f"\nfailed: {'; '.join(ERRORS)}")
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main())
