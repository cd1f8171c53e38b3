"""Per-run cost of the local executor: submit N runs of `true`, poll until all have finished.

Compared in the same run with the floor a user would write by hand, a plain Python loop of
`subprocess.run(["true"])`. Prints milliseconds per run and the ratio. Usage:

    python bench/bench_local.py [N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from talon.executors.base import Finished, Running, Submission
from talon.executors.local import LocalExecutor


def baseline(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(["true"], check=True)
    return time.perf_counter() - start


def talon_local(n: int, root: Path, command: str | tuple[str, ...]) -> float:
    executor = LocalExecutor({})
    subs = [
        Submission(
            run_id=f"r{i}",
            job="bench",
            command=command,
            env={},
            log_path=root / "state" / "p" / "bench" / f"r{i}.log",
            status_dir=root / "state" / ".talon" / "proc",
            workdir=root,
        )
        for i in range(n)
    ]
    (root / "state" / "p" / "bench").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    pending = {i: executor.submit(sub) for i, sub in enumerate(subs)}
    while pending:
        for i, handle in list(pending.items()):
            status = executor.poll(handle, subs[i])
            if isinstance(status, Running):
                continue
            if not (isinstance(status, Finished) and status.exit_code == 0):
                raise SystemExit(f"run {i} ended badly: {status}")
            del pending[i]
        if pending:
            time.sleep(0.001)
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rows: dict[str, list[float]] = {
        "subprocess.run loop": [],
        "local argv": [],
        "local string": [],  # in the wrapper's subshell
        "local string, $$": [],  # under a `sh -c` of its own
    }
    for r in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            rows["subprocess.run loop"].append(baseline(args.n))
            rows["local argv"].append(talon_local(args.n, Path(tmp) / f"a{r}", ("true",)))
            rows["local string"].append(talon_local(args.n, Path(tmp) / f"s{r}", "true"))
            rows["local string, $$"].append(talon_local(args.n, Path(tmp) / f"p{r}", "true $$"))
    base = statistics.median(rows["subprocess.run loop"]) / args.n
    print(f"{args.n} runs of `true`, median of {args.repeat}: submit all, poll until all finished")
    for name, times in rows.items():
        per = statistics.median(times) / args.n
        print(f"  {name:22s} {per * 1000:7.3f} ms/run   ratio {per / base:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
