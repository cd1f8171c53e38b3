"""Periods: the slice of time a run belongs to (daily, ISO weekly, monthly, quarterly, once).

A period is half-open ``[start, end)``; both bounds are aware datetimes in the job's zone.
A period starts at local midnight of its first day or, where that midnight does not exist
(America/Santiago springs forward at 00:00), at the first valid instant after it; where midnight
occurs twice it starts at the first occurrence. So DST days last 23 or 25 hours, and a day
that a zone skipped entirely (Pacific/Apia, 2011-12-30) has no period at all: its key is
rejected and ``next()`` of the day before is the day after.

``once`` is the single period of a one-shot job: ``[1970-01-01T00:00, 9999-12-31T00:00)`` in the
job's zone, key ``once``. It has no neighbours: ``next()``, ``previous()`` and ``shift(n != 0)``
raise ValueError, and ``period_containing`` ignores ``offset`` for it.

Compare and subtract bounds through UTC (``contains`` and ``duration`` do): Python compares two
datetimes sharing a tzinfo by wall clock, ignoring ``fold``, so ``end - start`` of a 25-hour day
in the same zone says 24 hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo


class PeriodType(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ONCE = "once"


ONCE_KEY = "once"
_ONCE_FIRST_DAY = date(1970, 1, 1)
_ONCE_END_DAY = date(9999, 12, 31)
_TICK = timedelta(microseconds=1)


def wall_exists(wall: datetime, tz: tzinfo) -> bool:
    """Whether the naive wall-clock time ``wall`` happens at all in ``tz``."""
    aware = wall.replace(tzinfo=tz, fold=0)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


def gap_end(wall: datetime, tz: tzinfo) -> datetime:
    """The first valid instant after the gap containing the nonexistent ``wall`` (in ``tz``).

    That is the transition instant itself. zoneinfo gives no direct access to it, so it is
    bracketed by the two fold readings of ``wall`` (PEP 495) and found by bisection on whole
    seconds, which is what tz data is written in; a gap lasts hours at most, so this is ~20 steps.
    """
    early = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)  # read with the offset after the gap
    late = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)  # read with the offset before it
    after_offset = late.astimezone(tz).utcoffset()
    lo, hi = int(early.timestamp()), int(late.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(tz).utcoffset() == after_offset:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC).astimezone(tz)


def day_start(day: date, tz: tzinfo) -> datetime:
    """The instant ``day`` begins in ``tz``: its first midnight, or the end of a gap over it."""
    wall = datetime.combine(day, time(0))
    if wall_exists(wall, tz):
        return wall.replace(tzinfo=tz, fold=0).astimezone(UTC).astimezone(tz)
    return gap_end(wall, tz)


@dataclass(frozen=True)
class Period:
    type: PeriodType
    start: datetime
    end: datetime

    @property
    def tz(self) -> tzinfo:
        zone = self.start.tzinfo
        if zone is None:  # pragma: no cover - constructors never build one
            raise ValueError("period bounds must be aware datetimes")
        return zone

    @property
    def key(self) -> str:
        if self.type is PeriodType.ONCE:
            return ONCE_KEY
        first = self.start.date()
        if self.type is PeriodType.DAILY:
            return first.isoformat()
        if self.type is PeriodType.WEEKLY:
            year, week, _ = first.isocalendar()
            return f"{year}-W{week:02d}"
        if self.type is PeriodType.MONTHLY:
            return f"{first.year}-{first.month:02d}"
        return f"{first.year}-Q{(first.month - 1) // 3 + 1}"

    @property
    def duration(self) -> timedelta:
        """Elapsed time from start to end (25 hours on a fall-back day)."""
        return self.end.astimezone(UTC) - self.start.astimezone(UTC)

    def contains(self, t: datetime) -> bool:
        u = t.astimezone(UTC)
        return self.start.astimezone(UTC) <= u < self.end.astimezone(UTC)

    def next(self) -> Period:
        self._check_has_neighbours()
        return period_containing(self.type, self.end, self.tz)

    def previous(self) -> Period:
        self._check_has_neighbours()
        return period_containing(self.type, self.start.astimezone(UTC) - _TICK, self.tz)

    def shift(self, n: int) -> Period:
        """The period ``n`` periods later (earlier when negative): ``shift(2)`` is
        ``next().next()``, so a day the zone skipped is not counted."""
        if n == 0:
            return self
        self._check_has_neighbours()
        if self.type is not PeriodType.DAILY:
            # A gap never swallows a week or a month, so calendar arithmetic counts right.
            first = _step_days(self.type, _first_day(self.type, self.start.date()), n)
            return _period_from_first_day(self.type, first, self.tz)
        period = self
        for _ in range(abs(n)):
            period = period.next() if n > 0 else period.previous()
        return period

    def _check_has_neighbours(self) -> None:
        if self.type is PeriodType.ONCE:
            raise ValueError("a once period has no next or previous period")

    def __str__(self) -> str:
        return self.key


def _first_day(ptype: PeriodType, day: date) -> date:
    """First calendar day of the period of ``ptype`` containing ``day``."""
    if ptype is PeriodType.DAILY:
        return day
    if ptype is PeriodType.WEEKLY:
        return day - timedelta(days=day.weekday())
    if ptype is PeriodType.MONTHLY:
        return day.replace(day=1)
    if ptype is PeriodType.QUARTERLY:
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return _ONCE_FIRST_DAY


def _step_days(ptype: PeriodType, first: date, n: int) -> date:
    """First day of the period ``n`` periods after the one starting on ``first``."""
    if ptype is PeriodType.DAILY:
        return first + timedelta(days=n)
    if ptype is PeriodType.WEEKLY:
        return first + timedelta(weeks=n)
    months = {PeriodType.MONTHLY: 1, PeriodType.QUARTERLY: 3}[ptype] * n
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _period_from_first_day(ptype: PeriodType, first: date, tz: tzinfo) -> Period:
    if ptype is PeriodType.ONCE:
        return Period(ptype, day_start(_ONCE_FIRST_DAY, tz), day_start(_ONCE_END_DAY, tz))
    start = day_start(first, tz)
    end = day_start(_step_days(ptype, first, 1), tz)
    if start == end:
        # Only a day the zone skipped is empty (a gap never swallows a week or a month).
        # Daily periods step over it; asked for directly, it is reported by the caller.
        return _period_from_first_day(ptype, first + timedelta(days=1), tz)
    return Period(ptype, start, end)


def period_containing(
    ptype: PeriodType, instant: datetime, tz: ZoneInfo | tzinfo, offset: int = 0
) -> Period:
    """The period of ``ptype`` containing ``instant`` in ``tz``, moved by ``offset`` periods."""
    if instant.tzinfo is None:
        raise ValueError(f"naive datetime {instant.isoformat()}: periods need an aware instant")
    ptype = PeriodType(ptype)
    local_day = instant.astimezone(tz).date()
    period = _period_from_first_day(ptype, _first_day(ptype, local_day), tz)
    if ptype is PeriodType.ONCE or offset == 0:
        return period
    return period.shift(offset)


_KEY_SHAPES: tuple[tuple[PeriodType, re.Pattern[str], str], ...] = (
    (PeriodType.DAILY, re.compile(r"(\d{4})-(\d{2})-(\d{2})"), "2026-11-27"),
    (PeriodType.WEEKLY, re.compile(r"(\d{4})-W(\d{2})"), "2026-W48"),
    (PeriodType.MONTHLY, re.compile(r"(\d{4})-(\d{2})"), "2026-11"),
    (PeriodType.QUARTERLY, re.compile(r"(\d{4})-Q([1-4])"), "2026-Q4"),
    (PeriodType.ONCE, re.compile(ONCE_KEY), ONCE_KEY),
)
_EXAMPLES = ", ".join(f"{example} ({ptype})" for ptype, _, example in _KEY_SHAPES)


def period_type_of_key(key: str) -> PeriodType:
    """The period type a key's shape says; ValueError if it has none of the shapes."""
    for ptype, shape, _ in _KEY_SHAPES:
        if shape.fullmatch(key):
            return ptype
    raise ValueError(f"bad period key '{key}': expected one of {_EXAMPLES}")


def parse_period_key(key: str, tz: ZoneInfo | tzinfo, ptype: PeriodType | None = None) -> Period:
    """The period named by ``key`` in ``tz``; ValueError on a malformed or impossible key."""
    found = period_type_of_key(key)
    if ptype is not None and PeriodType(ptype) is not found:
        example = next(ex for t, _, ex in _KEY_SHAPES if t is PeriodType(ptype))
        raise ValueError(f"period key '{key}' is {found}, expected a {ptype} key like {example}")
    match = next(shape for t, shape, _ in _KEY_SHAPES if t is found).fullmatch(key)
    assert match is not None
    nums = [int(g) for g in match.groups()]
    try:
        if found is PeriodType.DAILY:
            first = date(nums[0], nums[1], nums[2])
        elif found is PeriodType.WEEKLY:
            first = date.fromisocalendar(nums[0], nums[1], 1)
        elif found is PeriodType.MONTHLY:
            first = date(nums[0], nums[1], 1)
        elif found is PeriodType.QUARTERLY:
            first = date(nums[0], nums[1] * 3 - 2, 1)
        else:
            first = _ONCE_FIRST_DAY
    except ValueError as err:
        raise ValueError(f"bad period key '{key}': {err}") from None
    period = _period_from_first_day(found, first, tz)
    if period.key != key:
        raise ValueError(f"bad period key '{key}': that day does not exist in {tz}")
    return period
