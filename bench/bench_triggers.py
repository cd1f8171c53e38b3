"""How long next_fire takes for 10,000 jobs, against bare croniter in the same run.

    python bench/bench_triggers.py [JOBS]

The baseline is what a naive scheduler pays per job and pass: construct a croniter on an aware
start and call get_next once. Talon's figure includes its DST resolution and notes.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from croniter import croniter

from talon.triggers import Trigger, next_fire, parse_trigger

CRONS = [
    "30 6 * * *",
    "*/15 7-9 * * 1-5",
    "0 * * * *",
    "0 0 1 * *",
    "5 4 * * sun",
    "*/5 * * * *",
    "0 9-17/2 * * mon-fri",
    "0 0 29 2 *",
    "15 1 * * *",
    "0 12 1 1,4,7,10 *",
]
PHRASES = [
    "every 15 minutes between 7-10am, hourly until 4pm, every 5 minutes between 4-5pm",
    "every 30 minutes between 09:00-17:30 on weekdays",
    "every 2 hours between 8am-8pm",
    "hourly",
    "every 45 minutes between 10pm and 2am on fri",
]
ZONES = ["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


def main(argv: list[str]) -> int:
    jobs = int(argv[1]) if len(argv) > 1 else 10_000
    rng = random.Random(7)  # noqa: S311 - a repeatable mix of jobs, not a secret
    texts = [rng.choice(CRONS + PHRASES) for _ in range(jobs)]
    zones = [ZoneInfo(rng.choice(ZONES)) for _ in range(jobs)]
    triggers: list[list[Trigger]] = [[parse_trigger(t)] for t in texts]
    now = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # London and New York near fall-back

    start = time.perf_counter()
    for text, tz in zip(texts, zones, strict=True):
        croniter(text if text[0] not in "eh" else "0 * * * *", now.astimezone(tz)).get_next(
            datetime
        )
    baseline = time.perf_counter() - start

    start = time.perf_counter()
    for trigger, tz in zip(triggers, zones, strict=True):
        next_fire(trigger, now, tz)
    ours = time.perf_counter() - start

    print(f"jobs: {jobs} ({len(CRONS)} crons and {len(PHRASES)} phrases, {len(ZONES)} zones)")
    print(f"baseline croniter construct + get_next: {baseline * 1e3:8.1f} ms")
    print(f"talon next_fire (cached parse):        {ours * 1e3:8.1f} ms")
    print(f"per job: {ours / jobs * 1e6:.1f} us; ratio talon / baseline: {ours / baseline:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
