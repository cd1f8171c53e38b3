"""Cron expressions: located validation, and a wall-clock matcher.

This is the one module that imports croniter. croniter expands the fields (so names, steps
and wrapped ranges mean what they mean in croniter); the matching of naive wall-clock times is
done here, from the expanded sets, because croniter's own iteration costs ~25 us per step and
its DST handling is not Talon's (it fires fixed times twice on fall-back). Wall-clock times are
turned into instants by ``talon.triggers``, which owns the DST rules.

``TriggerSyntaxError`` lives here because this is the lowest layer; import it from
``talon.triggers``.
"""

from __future__ import annotations

import bisect
import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache


class TriggerSyntaxError(ValueError):
    """A trigger that cannot be parsed or can never fire; ``column`` is a 0-based offset."""

    def __init__(self, message: str, column: int | None = None, text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.text = text

    def pointer(self) -> str:
        """The text with a caret under the column, for terminals."""
        if self.column is None:
            return self.text
        return f"{self.text}\n{' ' * self.column}^"


@dataclass(frozen=True)
class CronTrigger:
    expr: str


_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES: dict[int, tuple[str, ...]] = {
    3: ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    4: ("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
}
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ITEM = re.compile(r"(?:(\*)|(\w+)(?:-(\w+))?)(?:/(\w*))?")
_MONTH_NAMES = tuple(calendar.month_name)
# The longest a month can be; February counts 29 because leap years do come.
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class CronSpec:
    """A validated cron expression, expanded to the sets of values each field allows."""

    expr: str
    day_minutes: tuple[int, ...]  # sorted minutes-of-day (hour * 60 + minute) that fire
    days: frozenset[int]  # empty = any day of the month
    months: frozenset[int]
    weekdays: frozenset[int]  # cron numbering, 0 = Sunday; empty = any
    days_or: bool  # both day fields restricted: either may match, as in cron
    wild_hour: bool  # hour is * or stepped: fires in both occurrences of a repeated hour

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = not self.days or day.day in self.days
        dow = not self.weekdays or day.isoweekday() % 7 in self.weekdays
        return (dom or dow) if self.days_or else (dom and dow)

    def walls_from(self, start: datetime) -> Iterator[datetime]:
        """Matching naive wall-clock times at or after ``start``, ascending, without end."""
        day = start.date()
        first = start.hour * 60 + start.minute + (start.second > 0 or start.microsecond > 0)
        while True:
            if day.month not in self.months:
                day = _next_month_start(day)
                first = 0
                continue
            if self.day_matches(day):
                midnight = datetime.combine(day, time(0))
                for m in self.day_minutes[bisect.bisect_left(self.day_minutes, first) :]:
                    yield midnight + timedelta(minutes=m)
            day += timedelta(days=1)
            first = 0


def _next_month_start(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _fail(text: str, message: str, column: int | None) -> TriggerSyntaxError:
    return TriggerSyntaxError(message, column, text)


def _value(text: str, token: str, column: int, index: int) -> int:
    low, high = _RANGES[index]
    field = _FIELDS[index]
    if token.isdigit():
        number = int(token)
        if not low <= number <= high:
            raise _fail(text, f"{field} {number} is out of range {low}-{high}", column)
        return number
    names = _NAMES.get(index)
    if names is None:
        raise _fail(
            text, f'expected a number {low}-{high} in the {field} field, got "{token}"', column
        )
    lowered = token.lower()
    if lowered not in names:
        raise _fail(
            text, f'unknown {field} name "{token}": expected one of {", ".join(names)}', column
        )
    return names.index(lowered) + (1 if index == 3 else 0)


def _check_field(text: str, field: str, column: int, index: int) -> None:
    """Raise a located error for anything croniter would reject or read as an extension."""
    offset = column
    for item in field.split(","):
        if not item:
            raise _fail(text, f"empty item in the {_FIELDS[index]} field", offset)
        match = _ITEM.fullmatch(item)
        if match is None:
            expected = "expected numbers, names, *, ranges a-b, steps /n and lists a,b"
            bad = next((i for i, c in enumerate(item) if not (c.isalnum() or c in "*-/")), None)
            if bad is None:
                raise _fail(
                    text, f'cannot read "{item}" in the {_FIELDS[index]} field: {expected}', offset
                )
            raise _fail(
                text,
                f'unexpected "{item[bad]}" in the {_FIELDS[index]} field: {expected}',
                offset + bad,
            )
        _, first, last, step = match.groups()
        if first is not None:
            _value(text, first, offset + match.start(2), index)
        if last is not None:
            _value(text, last, offset + match.start(3), index)
        if step is not None and not (step.isdigit() and int(step) > 0):
            raise _fail(
                text,
                f'step after / must be a whole number of at least 1, got "{step}"',
                offset + match.start(4),
            )
        offset += len(item) + 1


def _never_fires(spec: CronSpec) -> str | None:
    """Why ``spec`` can never fire, or None. Only fixed days beyond every chosen month can."""
    if not spec.days or (spec.days_or and spec.weekdays):
        return None
    first_day = min(spec.days)
    if any(first_day <= _MONTH_DAYS[m] for m in spec.months):
        return None
    months = [_MONTH_NAMES[m] for m in sorted(spec.months)]
    named = months[0] if len(months) == 1 else ", ".join(months[:-1]) + " and " + months[-1]
    return f"never fires: {named} {'has' if len(months) == 1 else 'have'} no day {first_day}"


# Crons compiled by an earlier process, handed over with the cached configuration
# (talon.speccache): a pass then never imports croniter, which costs 15 ms here.
_COMPILED: dict[str, CronSpec] = {}


def remember_compiled(compiled: dict[str, CronSpec]) -> None:
    _COMPILED.update(compiled)


def compile_cron(expr: str) -> CronSpec:
    """Validate ``expr`` and expand it; cached per text, since jobs share a handful of crons."""
    found = _COMPILED.get(expr)
    return found if found is not None else _compile_cron(expr)


@lru_cache(maxsize=4096)
def _compile_cron(expr: str) -> CronSpec:
    from croniter import croniter

    text = expr
    body = _MACROS.get(expr.strip().lower(), expr)
    if body.strip().startswith("@"):
        start = len(expr) - len(expr.lstrip())
        raise _fail(
            text,
            f'unknown cron macro "{expr.strip()}": expected one of {", ".join(_MACROS)}',
            start,
        )
    fields = [(m.group(), m.start()) for m in re.finditer(r"\S+", body)]
    if len(fields) != 5:
        column = fields[5][1] if len(fields) > 5 else len(body)
        raise _fail(
            text,
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}",
            column if body is expr else None,
        )
    for index, (field, column) in enumerate(fields):
        _check_field(text, field, column, index)
    try:
        expanded, nth = croniter.expand(" ".join(f for f, _ in fields))
    except Exception as err:  # croniter's own errors; our checks should have caught them
        raise _fail(text, f"bad cron expression: {err}", None) from None
    if nth:  # pragma: no cover - "#" is refused by _check_field
        raise _fail(text, "nth-weekday (#) is not supported", None)
    minutes, hours, days, months, weekdays = (
        frozenset(int(v) for v in values if v != "*") for values in expanded
    )
    spec = CronSpec(
        expr=expr,
        day_minutes=tuple(
            sorted(h * 60 + m for h in (hours or range(24)) for m in (minutes or range(60)))
        ),
        days=days,
        months=months or frozenset(range(1, 13)),
        weekdays=frozenset(d % 7 for d in weekdays),
        days_or=bool(days) and bool(weekdays),
        wild_hour="*" in fields[1][0] or "/" in fields[1][0],
    )
    reason = _never_fires(spec)
    if reason is not None:
        raise _fail(text, reason, fields[2][1] if body is expr else None)
    return spec
