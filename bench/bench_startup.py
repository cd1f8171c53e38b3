"""Start-up cost of `talon --help` and `talon validate` against `python -c pass` (same run)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 20


def median_ms(argv: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    talon = str(Path(sys.executable).with_name("talon"))
    base = median_ms([sys.executable, "-c", "pass"])
    help_ms = median_ms([talon, "--help"])
    print(f"python -c pass          {base:7.1f} ms (baseline)")
    print(f"talon --help            {help_ms:7.1f} ms  x{help_ms / base:.2f}  (target < 50 ms)")
    modules = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, talon.cli; print(' '.join(m for m in HEAVY if m in sys.modules))".replace(
                "HEAVY",
                repr(("fabric", "jsonschema", "ruamel", "croniter", "watchdog", "paramiko")),
            ),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"heavy modules imported by talon.cli: {modules or 'none'}")
    example = ROOT / "example-repo"
    if example.is_dir():
        val = median_ms([talon, "-C", str(example), "validate"])
        print(f"talon validate (example){val:7.1f} ms  x{val / base:.2f}")


if __name__ == "__main__":
    main()
