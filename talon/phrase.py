"""Window triggers: the extended form, as a phrase or as structured ``windows:``.

    every 15 minutes between 7-10am, hourly until 4pm, every 5 minutes between 4-5pm

A window is a half-open wall-clock span ``[start, end)`` that fires at ``start`` and every
``every_s`` seconds (whole minutes, like cron) after it while before ``end``. ``end == 00:00``
means the end of the day; an end before the start wraps past midnight (the window belongs to
the day it starts on, which is the day the ``days`` filter looks at). "until T" starts where
the previous window ended (at 00:00 for the first). A window is a set of wall-clock times,
like a stepped cron hour, so DST is handled as for one: ``talon.triggers`` owns that.

Grammar (case-insensitive; "," between clauses; the day qualifier comes last)::

    phrase  := clause ("," clause)* [","] [days]
    clause  := rate [span]                     # no span: all day
    rate    := "hourly" | "every" ("minute" | "hour" | N ("minutes" | "hours"))
    span    := "between" T ("-" | "and" | "to") T | "from" T [("to" | "until" | "-") T]
             | "until" T
    T       := 7am | 7:30pm | 07:00 | 17 | noon | midnight   # "7-10am": the am/pm is shared
    days    := "on" day ("," | "and" day)* ; day := mon..sun | mon-fri | weekdays | weekends
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from talon.cron import TriggerSyntaxError
from talon.durations import parse_duration

DAY_S = 86400
WEEKDAYS = frozenset(range(1, 6))
WEEKENDS = frozenset({6, 7})
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {"tues": 2, "wednes": 3, "thur": 4, "thurs": 4}


@dataclass(frozen=True)
class Window:
    every_s: int
    start: time
    end: time  # time(0) = end of day; before start = wraps past midnight


@dataclass(frozen=True)
class WindowTrigger:
    windows: tuple[Window, ...]
    days: frozenset[int] | None = None  # ISO weekdays 1..7; None = every day


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def window_span(window: Window) -> tuple[int, int]:
    """``[start, end)`` in seconds from the midnight of the window's day (end may pass 86400)."""
    start, end = _seconds(window.start), _seconds(window.end)
    return start, end + DAY_S if end <= start else end


_FULLDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _parse_day(word: str) -> int | None:
    """ISO weekday of "mon", "monday", "tues", ...; None if it is no day name."""
    for index, (short, full) in enumerate(zip(DAY_NAMES, _FULLDAY_NAMES, strict=True)):
        if word in (short, full) or _DAY_ALIASES.get(word) == index + 1:
            return index + 1
    return None


# -- the phrase -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<num>\d+(?::\d+)?)|(?P<word>[a-z]+)|(?P<sym>[-,\u2013])|(?P<ws>\s+)|(?P<bad>.)"
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    col: int


@dataclass(frozen=True)
class _Time:
    hour: int
    minute: int
    suffix: str | None  # "am" / "pm"
    word: bool  # noon / midnight / HH:MM: unambiguous as written
    col: int


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks: list[_Tok] = []
        for m in _TOKEN.finditer(text.lower()):
            kind = m.lastgroup or "bad"
            if kind == "bad":
                raise self.error(f'unexpected "{m.group()}"', m.start())
            if kind != "ws":
                self.toks.append(_Tok(kind, "-" if m.group() == "\u2013" else m.group(), m.start()))
        self.pos = 0

    def error(self, message: str, col: int | None = None) -> TriggerSyntaxError:
        if col is None:
            col = self.toks[self.pos].col if self.pos < len(self.toks) else len(self.text)
        return TriggerSyntaxError(message, col, self.text)

    def peek(self, *texts: str) -> bool:
        return self.pos < len(self.toks) and (not texts or self.toks[self.pos].text in texts)

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def said(self, start: int) -> str:
        """What the user wrote from token ``start`` up to here, for "after ..." messages."""
        if start >= self.pos:
            return ""
        return self.text[
            self.toks[start].col : self.toks[self.pos - 1].col + len(self.toks[self.pos - 1].text)
        ]

    def parse(self) -> WindowTrigger:
        if not self.toks:
            raise self.error('empty trigger: expected "every ..." or "hourly"')
        windows: list[Window] = []
        days: frozenset[int] | None = None
        while True:
            windows.append(self.clause(windows[-1] if windows else None))
            if self.peek(","):
                self.take()
                if self.peek("on"):
                    days = self.days()
                    break
                continue
            if self.peek("on"):
                days = self.days()
                break
            if not self.peek():
                break
            raise self.error(f'expected "," or "on" after "{self.said(0)}"')
        if self.peek():
            raise self.error("expected the end of the trigger after the day qualifier")
        return WindowTrigger(tuple(windows), days)

    def clause(self, previous: Window | None) -> Window:
        first = self.pos
        if self.peek("hourly"):
            self.take()
            every = 3600
        elif self.peek("every"):
            self.take()
            every = self.rate(first)
        else:
            raise self.error('expected "every" or "hourly"')
        start, end = time(0), time(0)
        if self.peek("between"):
            self.take()
            low = self.read_time(first)
            if not self.peek("-", "and", "to"):
                raise self.error(f'expected "-" or "and" after "{self.said(first)}"')
            self.take()
            start, end = self.pair(low, self.read_time(first))
        elif self.peek("from"):
            self.take()
            low = self.read_time(first)
            if self.peek("-", "to", "until"):
                self.take()
                start, end = self.pair(low, self.read_time(first))
            else:
                start = self.pair(low, None)[0]
        elif self.peek("until"):
            self.take()
            start = previous.end if previous is not None else time(0)
            end = self.pair(self.read_time(first), None)[0]
        if start == end and start != time(0):
            raise self.error(
                f'empty window: "{self.said(first)}" starts where it ends', self.toks[first].col
            )
        return Window(every, start, end)

    def rate(self, first: int) -> int:
        if self.peek("minute", "hour", "min", "hr"):
            return 60 if self.take().text.startswith("min") else 3600
        if not (
            self.peek()
            and self.toks[self.pos].kind == "num"
            and ":" not in self.toks[self.pos].text
        ):
            raise self.error('expected a number, "minute" or "hour" after "every"')
        count = int(self.take().text)
        if count == 0:
            raise self.error(
                '"every 0" never moves on: expected a number of at least 1',
                self.toks[self.pos - 1].col,
            )
        if self.peek("minutes", "minute", "mins", "min"):
            self.take()
            return count * 60
        if self.peek("hours", "hour", "hrs", "hr"):
            self.take()
            return count * 3600
        raise self.error(f'expected "minutes" or "hours" after "{self.said(first)}"')

    def read_time(self, first: int) -> _Time:
        hint = f'expected a time like 7am, 4:30pm or 16:30 after "{self.said(first)}"'
        if self.peek("noon", "midnight"):
            tok = self.take()
            return _Time(12 if tok.text == "noon" else 0, 0, None, True, tok.col)
        if not (self.peek() and self.toks[self.pos].kind == "num"):
            raise self.error(hint)
        tok = self.take()
        hour_text, _, minute_text = tok.text.partition(":")
        hour, minute = int(hour_text), int(minute_text or 0)
        suffix = None
        if self.peek("am", "pm", "a", "p"):
            suffix = self.take().text[0] + "m"
        elif self.peek() and self.toks[self.pos].col == tok.col + len(tok.text):
            glued = self.toks[self.pos]
            if glued.kind == "word":
                raise self.error(f'expected am or pm after "{tok.text}", got "{glued.text}"')
        limit = 12 if suffix else 23
        if not (0 <= hour <= limit and minute < 60 and len(minute_text) in (0, 2)):
            raise self.error(f'"{tok.text}" is not a time of day', tok.col)
        if suffix and hour == 0:
            raise self.error(
                f'"{tok.text}{suffix}" is not a time of day: write 12am or 00:00', tok.col
            )
        return _Time(hour, minute, suffix, bool(minute_text), tok.col)

    def pair(self, low: _Time, high: _Time | None) -> tuple[time, time]:
        """Resolve am/pm across a range ("7-10am" is 7am-10am; "11-1pm" is 11am-1pm).

        A bare hour 1..12 is refused unless the other end shows the 24-hour clock ("9-17"):
        "between 9-5" would otherwise silently mean an overnight window.
        """
        ends = [low] if high is None else [low, high]
        clock24 = any(t.suffix is None and (t.word or not 1 <= t.hour <= 12) for t in ends)
        for t in ends:
            if t.suffix is None and not clock24 and (high is None or high.suffix is None):
                raise self.error(
                    f'"{t.hour}" could be morning or evening: write {t.hour}am, {t.hour}pm '
                    f"or {t.hour:02d}:00",
                    t.col,
                )
        if high is None:
            return _clock(low, low.suffix), _clock(low, low.suffix)
        end = _clock(high, high.suffix)
        start = _clock(low, low.suffix or high.suffix)
        if low.suffix is None and high.suffix and start > end != time(0):
            start = _clock(low, "am" if high.suffix == "pm" else "pm")
        return start, end

    def days(self) -> frozenset[int]:
        self.take()  # "on"
        found: set[int] = set()
        while True:
            if not (self.peek() and self.toks[self.pos].kind == "word"):
                raise self.error("expected weekdays, weekends or day names like mon,wed,fri")
            tok = self.take()
            if tok.text in ("weekdays", "weekday"):
                found |= WEEKDAYS
            elif tok.text in ("weekends", "weekend"):
                found |= WEEKENDS
            else:
                day = _parse_day(tok.text)
                if tok.text in ("every", "hourly"):
                    raise self.error(
                        'the day qualifier comes last: "on ..." applies to the whole trigger',
                        tok.col,
                    )
                if day is None:
                    raise self.error(
                        f'unknown day "{tok.text}": expected mon, tue, ..., sun', tok.col
                    )
                last = day
                if self.peek("-"):
                    self.take()
                    if not (self.peek() and (end := _parse_day(self.toks[self.pos].text))):
                        raise self.error('expected a day name after "-"')
                    self.take()
                    last = end
                span = (last - day) % 7
                found |= {(day - 1 + i) % 7 + 1 for i in range(span + 1)}
            if self.peek(",", "and"):
                self.take()
                continue
            return frozenset(found)


def parse_phrase(text: str) -> WindowTrigger:
    """Parse the extended window phrase; TriggerSyntaxError says what was expected, and where."""
    return _Parser(text).parse()


# -- the structured form ----------------------------------------------------------------------


def _structured_clock(value: object, where: str) -> time:
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0, tzinfo=None)
    if not isinstance(value, str):
        raise TriggerSyntaxError(f'{where}: expected a time in quotes like "07:00", got {value!r}')
    parser = _Parser(value)
    try:
        parsed = parser.read_time(0)
        if parser.peek():
            raise parser.error("expected the end of the time")
        return parser.pair(parsed, None)[0]
    except TriggerSyntaxError as err:
        raise TriggerSyntaxError(f"{where}: {err.message}", err.column, value) from None


def parse_days(value: str | Sequence[str | int]) -> frozenset[int]:
    """``weekdays``, ``mon,wed,fri``, ``[mon, tue]`` or ISO numbers ``[1, 2]``."""
    if isinstance(value, str):
        return _Parser("on " + value).days() if value.strip() else frozenset()
    found: set[int] = set()
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= 7:
            found.add(item)
        elif isinstance(item, str):
            found |= parse_days(item)
        else:
            raise TriggerSyntaxError(f"days: expected day names or 1..7 (Monday = 1), got {item!r}")
    return frozenset(found)


def parse_windows(
    items: Sequence[Mapping[str, object]], days: str | Sequence[str | int] | None = None
) -> WindowTrigger:
    """The structured form: ``[{every: 15m, from: "07:00", to: "10:00"}, ...]``.

    ``from`` defaults to where the previous window ended (00:00 for the first), ``to`` to the end
    of the day. ``days`` (or a ``days`` key on the items, which must then agree) filters days.
    """
    if not items:
        raise TriggerSyntaxError("windows: expected at least one window")
    windows: list[Window] = []
    item_days: set[frozenset[int]] = set()
    for index, item in enumerate(items, 1):
        where = f"window {index}"
        unknown = set(item) - {"every", "from", "to", "days"}
        if unknown:
            raise TriggerSyntaxError(
                f"{where}: unknown key {sorted(unknown)[0]!r}: expected every, from, to, days"
            )
        if "every" not in item:
            raise TriggerSyntaxError(f"{where}: missing every (e.g. every: 15m)")
        every_value = item["every"]
        try:
            if not isinstance(every_value, str | int | float):
                raise ValueError(f"bad duration {every_value!r}")
            every = parse_duration(every_value)
        except ValueError as err:
            raise TriggerSyntaxError(f"{where}: every: {err}") from None
        if every < 60 or every % 60:
            raise TriggerSyntaxError(
                f"{where}: every must be a whole number of minutes (triggers fire to the minute)"
            )
        previous_end = windows[-1].end if windows else time(0)
        start = (
            _structured_clock(item["from"], f"{where}: from") if "from" in item else previous_end
        )
        end = _structured_clock(item["to"], f"{where}: to") if "to" in item else time(0)
        if start == end != time(0):
            raise TriggerSyntaxError(
                f"{where}: empty window, it starts where it ends ({start:%H:%M})"
            )
        windows.append(Window(int(every), start, end))
        if "days" in item:
            item_days.add(_days_value(item["days"], where))
    chosen = _days_value(days, "days") if days is not None else None
    if item_days:
        if len(item_days) > 1 or (chosen is not None and chosen not in item_days):
            raise TriggerSyntaxError(
                "windows: days differ between windows; use one trigger per set of days"
            )
        chosen = item_days.pop()
    return WindowTrigger(tuple(windows), chosen)


def _clock(t: _Time, suffix: str | None) -> time:
    if suffix is None:
        return time(t.hour, t.minute)
    return time(t.hour % 12 + (12 if suffix == "pm" else 0), t.minute)


def _days_value(value: object, where: str) -> frozenset[int]:
    if not isinstance(value, str | list | tuple):
        raise TriggerSyntaxError(f"{where}: expected day names like mon,wed,fri, got {value!r}")
    try:
        found = parse_days(value)
    except TriggerSyntaxError as err:
        raise TriggerSyntaxError(f"{where}: {err.message}") from None
    if not found:
        raise TriggerSyntaxError(f"{where}: no days given, so it would never fire")
    return found


# -- wall-clock times -------------------------------------------------------------------------


@dataclass(frozen=True)
class _DayTable:
    """Seconds-from-midnight that fire on a date, by whether that date and the day before count."""

    both: tuple[int, ...]
    own: tuple[int, ...]  # the date counts, the day before does not
    spill: tuple[int, ...]  # only the day before counts: its windows that wrap past midnight


@lru_cache(maxsize=4096)
def _table(trigger: WindowTrigger) -> _DayTable:
    own: set[int] = set()
    spill: set[int] = set()
    for window in trigger.windows:
        start, end = window_span(window)
        for offset in range(start, end, max(window.every_s, 1)):
            (own if offset < DAY_S else spill).add(offset % DAY_S)
    return _DayTable(tuple(sorted(own | spill)), tuple(sorted(own)), tuple(sorted(spill)))


def walls_from(trigger: WindowTrigger, start: datetime) -> Iterator[datetime]:
    """Naive wall-clock fire times of ``trigger`` at or after naive ``start``, ascending."""
    table = _table(trigger)
    days = trigger.days
    if not table.both or days == frozenset():
        return
    day: date = start.date()
    first = start.hour * 3600 + start.minute * 60 + start.second + (start.microsecond > 0)
    while True:
        today = days is None or day.isoweekday() in days
        yesterday = days is None or (day.isoweekday() + 5) % 7 + 1 in days
        offsets = (
            table.both
            if today and yesterday
            else table.own
            if today
            else table.spill
            if yesterday
            else ()
        )
        midnight = datetime.combine(day, time(0))
        for offset in offsets[bisect.bisect_left(offsets, first) :]:
            yield midnight + timedelta(seconds=offset)
        day += timedelta(days=1)
        first = 0
