"""Python code of the example repository: an inprocess job and a plugin constraint.

Talon puts the repository's lib/ directory on the import path, so talon.yaml and the schedule
refer to these functions as "talon_example:refresh" and "talon_example:business_day".
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "out"

INSTRUMENTS = ("VOD.L", "HSBA.L", "BP.L", "AZN.L")

# Bank holidays in England and Wales (gov.uk). A real team would read a calendar service.
BANK_HOLIDAYS = frozenset(
    date.fromisoformat(d)
    for d in (
        "2026-01-01", "2026-04-03", "2026-04-06", "2026-05-04", "2026-05-25",
        "2026-08-31", "2026-12-25", "2026-12-28",
        "2027-01-01", "2027-03-26", "2027-03-29", "2027-05-03", "2027-05-31",
        "2027-08-30", "2027-12-27", "2027-12-28",
    )
)  # fmt: skip


def refresh(ctx: Any) -> None:
    """The inprocess job `refresh-instruments`: write the instrument master list.

    `ctx` is the run context Talon passes: `ctx.params`, `ctx.period` (a mapping with type,
    key, start and end, as in the run file), `ctx.progress(percent)`, `ctx.item(name, state)`
    and `ctx.artifact(url, name=None)`. Returning is success; an exception fails the run, and
    its traceback is in the run's log (`talon log RUN`).
    """
    source = str(ctx.params.get("source", "exchange"))
    target = OUT / "instruments" / f"{ctx.period['key']}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = ["symbol,source"]
    for done, symbol in enumerate(INSTRUMENTS, 1):
        lines.append(f"{symbol},{source}")
        ctx.progress(100 * done // len(INSTRUMENTS))
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ctx.artifact(target.as_uri(), name="instruments")


def business_day(run: Any, options: Any, view: Any, now: datetime) -> tuple[str, str]:
    """The plugin constraint `business_day`: skip runs for weekends and bank holidays.

    Talon calls a constraint plugin with the run, the options written under the job's
    `constraints:` (here just `true`), a read-only view of the state and the current time, and
    expects (verdict, reason) with verdict one of pass, block, fail, cancel. The day checked is
    the one the run's period starts on, which is the trigger's day for a daily job.
    """
    day = date.fromisoformat(str(run.period["start"])[:10])
    if day.isoweekday() > 5:
        return "cancel", f"{day} is a {day:%A}: not a business day"
    if day in BANK_HOLIDAYS:
        return "cancel", f"{day} is a bank holiday in England"
    return "pass", f"{day} is a business day"
