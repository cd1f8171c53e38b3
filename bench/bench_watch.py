"""`talon watch` reaction times and idle cost, against a bare watchdog observer (same run).

- baseline: a bare watchdog observer noticing a file write (write -> handler called);
- upstream -> dependant: a chain of `{after: ...}` jobs; from the upstream's run file turning
  `succeeded` (its mtime) to the dependant's command starting, and from the upstream command's
  last line to the dependant command's first (the whole hand-off, wrapper and exec included);
- trigger -> start: from `talon trigger` returning (in-process, so Python's start-up is not
  counted) to the run's command starting; and from spawning the `talon trigger` CLI;
- cron: a `* * * * *` job, the delay from the minute to its command starting;
- idle: CPU seconds a watcher over 10,000 jobs uses in 10 s with nothing due, and one
  safety-net pass over them.

Every command prints `date +%s.%N` first, so "starting" means the job's own first instruction.
`python bench/bench_watch.py [--quick]` (--quick: fewer samples, no cron minute, 2,000 jobs).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STAMP = "date +%s.%N"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def show(label: str, ms: list[float], base: float | None = None, target: str = "") -> None:
    p50, p99 = statistics.median(ms), pct(ms, 99)
    ratio = f"  x{p50 / base:.1f} baseline" if base else ""
    tail = f"  (target {target})" if target else ""
    print(f"{label:<44} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  n={len(ms)}{ratio}{tail}", flush=True)


def write_repo(root: Path, files: dict[str, str]) -> Path:
    for rel, text in {"talon.yaml": "timezone: UTC\n", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "state").mkdir(exist_ok=True)
    return root


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TALON_")}


class Watcher:
    """`talon watch --json` as a subprocess, its decisions read by a thread."""

    def __init__(self, repo: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "talon", "-C", str(repo), "watch", "--json", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=clean_env(),
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait_for("watch", timeout=600)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def wait_for(self, action: str, run: str = "", timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            e = self.lines.get(timeout=max(0.001, deadline - time.monotonic()))
            if e["action"] == action and e["run"].startswith(run):
                return e

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def settle(self, quiet: float = 1.0, timeout: float = 600) -> float:
        """Wait until the watcher has used no CPU for `quiet` seconds; seconds waited."""
        start = time.monotonic()
        last = self.cpu()
        while time.monotonic() - start < timeout:
            time.sleep(quiet)
            now = self.cpu()
            if now - last < 0.01:
                return time.monotonic() - start
            last = now
        return time.monotonic() - start

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.reader.join(timeout=5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def started_at(repo: Path, job: str, run: str) -> float:
    return float(next((repo / "state").glob(f"*/{job}/{run}.log")).read_text().split()[0])


# --- baseline --------------------------------------------------------------------------------


def bare_watchdog(n: int) -> list[float]:
    from watchdog.events import FileClosedEvent, FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    seen: queue.Queue[float] = queue.Queue()

    class Handler(FileSystemEventHandler):
        def on_closed(self, event: FileSystemEvent) -> None:
            seen.put(time.time())

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        observer = Observer()
        observer.schedule(Handler(), tmp, event_filter=[FileClosedEvent])
        observer.start()
        try:
            for i in range(n):
                t0 = time.time()
                Path(tmp, f"f{i}").write_text("x")
                out.append((seen.get(timeout=5) - t0) * 1000)
                time.sleep(0.005)
        finally:
            observer.stop()
            observer.join()
    return out


# --- upstream -> dependant -------------------------------------------------------------------


def chain(tmp: Path, length: int, rounds: int) -> tuple[list[float], list[float]]:
    jobs = [f"  j{0:03}:\n    command: {STAMP}\n    trigger: external\n"]
    for i in range(1, length):
        jobs.append(f"  j{i:03}:\n    command: {STAMP}\n    trigger: {{after: j{i - 1:03}}}\n")
    repo = write_repo(tmp / "chain", {"schedule/chain.yaml": "jobs:\n" + "".join(jobs)})
    w = Watcher(repo)
    from_file, handoff = [], []
    try:
        for _ in range(rounds):
            run0 = trigger_in_process(repo, "j000")
            runs = {"j000": run0}
            for i in range(1, length):
                runs[f"j{i:03}"] = w.wait_for("dispatch", f"j{i:03}@")["run"]
            last = f"j{length - 1:03}"
            w.wait_for("succeed", runs[last])
            for i in range(1, length):
                up, down = f"j{i - 1:03}", f"j{i:03}"
                up_file = next((repo / "state").glob(f"*/{up}/{runs[up]}.json"))
                begun = started_at(repo, down, runs[down])
                from_file.append((begun - up_file.stat().st_mtime) * 1000)
                handoff.append((begun - started_at(repo, up, runs[up])) * 1000)
    finally:
        w.stop()
    return from_file, handoff


def trigger_in_process(repo: Path, job: str) -> str:
    from talon.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["-C", str(repo), "trigger", job]) == 0
    return out.getvalue().strip()


# --- trigger -> start ------------------------------------------------------------------------


def triggers(tmp: Path, n: int, n_cli: int) -> tuple[list[float], list[float]]:
    repo = write_repo(
        tmp / "trigger",
        {"schedule/t.yaml": f"jobs:\n  t:\n    command: {STAMP}\n    trigger: external\n"},
    )
    w = Watcher(repo)
    inproc, cli = [], []
    try:
        for _ in range(n):
            run = trigger_in_process(repo, "t")
            t0 = time.time()
            w.wait_for("succeed", run)
            inproc.append((started_at(repo, "t", run) - t0) * 1000)
        talon = [sys.executable, "-m", "talon", "-C", str(repo), "trigger", "t"]
        for _ in range(n_cli):
            t0 = time.time()
            run = subprocess.run(
                talon, capture_output=True, text=True, check=True, env=clean_env()
            ).stdout
            w.wait_for("succeed", run.strip())
            cli.append((started_at(repo, "t", run.strip()) - t0) * 1000)
    finally:
        w.stop()
    return inproc, cli


# --- cron ------------------------------------------------------------------------------------


def cron(tmp: Path, samples: int) -> list[float]:
    repo = write_repo(
        tmp / "cron",
        {"schedule/m.yaml": f"jobs:\n  m:\n    command: {STAMP}\n    trigger: '* * * * *'\n"},
    )
    w = Watcher(repo)
    out = []
    try:
        for _ in range(samples):
            created = w.wait_for("create", "m@", timeout=90)
            w.wait_for("succeed", created["run"])
            instant = datetime.strptime(created["run"][2:], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            out.append((started_at(repo, "m", created["run"]) - instant.timestamp()) * 1000)
    finally:
        w.stop()
    return out


# --- idle ------------------------------------------------------------------------------------


def many_jobs(tmp: Path, n: int) -> Path:
    hour = (datetime.now(UTC).hour + 12) % 24  # due nowhere near the measurement
    files = {}
    per_file = 100
    for f in range(n // per_file):
        body = ["jobs:\n"]
        for j in range(per_file):
            trig = "external" if j % 2 else f"'{j % 60} {hour} * * *'"
            body.append(f"  job{f:03}-{j:03}:\n    command: {STAMP}\n    trigger: {trig}\n")
        files[f"schedule/f{f:03}.yaml"] = "".join(body)
    return write_repo(tmp / "many", files)


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    print(f"{label:<44} {time.perf_counter() - t0:7.2f} s", flush=True)


def idle(tmp: Path, n: int, window: float) -> None:
    repo = many_jobs(tmp, n)
    from talon.speccache import load_spec_cached

    with timed(f"parse {n} jobs into the spec cache"):
        load_spec_cached(repo)
    for label in ("first", "second"):
        t0 = time.perf_counter()
        w = Watcher(repo)
        up = time.perf_counter() - t0
        w.settle(quiet=0.2)
        first = time.perf_counter() - t0 - up - 0.2  # less the quiet spell that ended `settle`
        print(f"{label} start over {n} jobs: {up:5.2f} s, then its first pass {first:5.1f} s")
        w.stop()
    w = Watcher(repo, "--full-pass", "5s")
    try:
        w.settle()
        # Nothing due in the window (--full-pass 5s: the window holds about two safety-net passes).
        before = w.cpu()
        time.sleep(window)
        used = w.cpu() - before
        per_pass = used / (window / 5)
        print(f"one safety-net pass over {n} jobs, CPU     {per_pass:7.3f} s")
        print(f"  = {per_pass / 60:.2%} of a core at the default --full-pass 60s")
    finally:
        w.stop()
    w = Watcher(repo)
    try:
        w.settle()
        before = w.cpu()
        time.sleep(window)
        used = w.cpu() - before
        share = f"{used / window:.2%} of a core; CPU ticks are 0.01 s"
        print(f"idle CPU over {n} jobs, {window:g} s (default 60s) {used:7.3f} s  ({share})")
    finally:
        w.stop()


def main() -> None:
    quick = "--quick" in sys.argv
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} cores (figures are noisy above that)")
    base = bare_watchdog(50 if quick else 200)
    show("bare watchdog: write -> handler (baseline)", base)
    b50 = statistics.median(base)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        from_file, handoff = chain(tmp, 30 if quick else 100, 1 if quick else 2)
        show("run file succeeded -> dependant starts", from_file, b50, "p50 < 50, p99 < 200")
        show("upstream's last line -> dependant's first", handoff, b50)
        inproc, cli = triggers(tmp, 20 if quick else 100, 5 if quick else 20)
        show("talon trigger returns -> run starts", inproc, b50, "p50 < 50, p99 < 200")
        show("talon trigger CLI spawned -> run starts", cli, b50)
        if not quick:
            delays = cron(tmp, 1)
            late = max(delays)
            print(
                f"cron '* * * * *': minute -> command starts   {late:7.1f} ms  (target < 1000 ms)"
            )
        idle(tmp, 2000 if quick else 10_000, 10.0)


if __name__ == "__main__":
    main()
