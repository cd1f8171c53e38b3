"""Properties of the time core, over zones chosen for their awkward transitions."""

import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from talon.cron import compile_cron
from talon.periods import PeriodType, parse_period_key, period_containing
from talon.phrase import window_span
from talon.triggers import (
    DstPolicy,
    Fire,
    Trigger,
    Window,
    WindowTrigger,
    fires_between,
    next_fire,
    parse_cron,
)

ZONES = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Kolkata",
    "Pacific/Apia",
    "America/Havana",  # falls back at 01:00 to midnight: midnight happens twice
    "Asia/Tehran",
]
zones = st.sampled_from(ZONES).map(ZoneInfo)
instants = st.datetimes(datetime(1995, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC))
# Weighted towards the days clocks change, where the bugs live.
dst_days = st.sampled_from(
    [
        datetime(2026, 3, 29, tzinfo=UTC),
        datetime(2026, 10, 25, tzinfo=UTC),
        datetime(2026, 3, 8, 5, tzinfo=UTC),
        datetime(2026, 11, 1, 4, tzinfo=UTC),
        datetime(2026, 4, 4, 13, tzinfo=UTC),
        datetime(2026, 10, 3, 14, tzinfo=UTC),
        datetime(2026, 4, 4, 20, tzinfo=UTC),
        datetime(2026, 9, 5, 20, tzinfo=UTC),
        datetime(2011, 12, 29, 10, tzinfo=UTC),
        datetime(2026, 11, 1, 4, tzinfo=UTC),
    ]
)
near_dst = st.builds(
    lambda day, minutes: day + timedelta(minutes=minutes), dst_days, st.integers(-720, 720)
)
moments = st.one_of(instants, near_dst)
period_types = st.sampled_from(
    [PeriodType.DAILY, PeriodType.WEEKLY, PeriodType.MONTHLY, PeriodType.QUARTERLY]
)
policies = st.builds(
    DstPolicy,
    gap=st.sampled_from(["shift", "skip"]),
    fold=st.sampled_from([None, "first", "last", "both"]),
)


@settings(max_examples=300, deadline=None)
@given(ptype=period_types, instant=moments, tz=zones, offset=st.integers(-3, 3))
def test_periods_round_trip_and_tile(
    ptype: PeriodType, instant: datetime, tz: ZoneInfo, offset: int
) -> None:
    p = period_containing(ptype, instant, tz)
    assert p.contains(instant)
    assert parse_period_key(p.key, tz) == p
    assert parse_period_key(p.key, tz, ptype) == p
    assert p.next().start == p.end
    assert p.previous().end == p.start
    assert p.next().previous() == p
    assert p.shift(offset) == period_containing(ptype, instant, tz, offset)
    assert p.shift(offset).shift(-offset) == p
    assert p.duration > timedelta(0)
    # bounds are real instants of the zone: converting through UTC changes nothing
    for bound in (p.start, p.end):
        assert bound.astimezone(UTC).astimezone(tz).isoformat() == bound.isoformat()


_minute = st.sampled_from(["*", "0", "30", "*/15", "5,35", "*/7", "59"])
_hour = st.sampled_from(["*", "0", "1", "2", "23", "*/2", "1-3", "0-23/5", "22-2"])
_dom = st.sampled_from(["*", "*", "1", "15", "29", "30"])
_dow = st.sampled_from(["*", "*", "1-5", "sat,sun", "0"])
crons = st.builds(lambda *f: parse_cron(" ".join(f)), _minute, _hour, _dom, st.just("*"), _dow)

times_of_day = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
windows = st.builds(
    Window,
    every_s=st.sampled_from([60, 300, 900, 1800, 3600, 5400, 7200]),
    start=times_of_day,
    end=times_of_day,
).filter(lambda w: w.start != w.end or w.end == time(0))
window_triggers = st.builds(
    WindowTrigger,
    windows=st.lists(windows, min_size=1, max_size=3).map(tuple),
    days=st.one_of(st.none(), st.frozensets(st.integers(1, 7), min_size=1)),
)
trigger_lists = st.lists(st.one_of(crons, window_triggers), min_size=1, max_size=3)


def utc(fire: Fire) -> datetime:
    return fire.at.astimezone(UTC)


@settings(max_examples=300, deadline=None)
@given(triggers=trigger_lists, after=moments, tz=zones, dst=policies)
def test_fires_are_increasing_unique_valid_instants(
    triggers: list[Trigger], after: datetime, tz: ZoneInfo, dst: DstPolicy
) -> None:
    fires = fires_between(triggers, after, after + timedelta(days=2), tz, dst, limit=300)
    instants = [utc(f) for f in fires]
    assert all(a < b for a, b in itertools.pairwise(instants))
    assert all(i > after for i in instants)
    for fire in fires:
        # a valid instant of the zone: local time and offset are what the zone says there,
        # and that wall time, read with its fold, is the same instant
        local = fire.at.astimezone(tz)
        assert local.isoformat() == fire.at.isoformat()
        wall = local.replace(tzinfo=None)
        assert wall.replace(tzinfo=tz, fold=local.fold).astimezone(UTC) == utc(fire)
    # stepping with next_fire visits exactly the same fires
    cursor = after
    for fire in fires[:20]:
        assert next_fire(triggers, cursor, tz, dst) == fire
        cursor = fire.at


def in_window(wall: datetime, trigger: WindowTrigger) -> bool:
    for window in trigger.windows:
        start, end = window_span(window)
        seconds = wall.hour * 3600 + wall.minute * 60 + wall.second
        for day_back, offset in ((0, seconds), (1, seconds + 86400)):
            day = (wall.date() - timedelta(days=day_back)).isoweekday()
            if trigger.days is not None and day not in trigger.days:
                continue
            if start <= offset < end and (offset - start) % window.every_s == 0:
                return True
    return False


@settings(max_examples=300, deadline=None)
@given(trigger=window_triggers, after=moments, tz=zones, dst=policies)
def test_every_fire_of_a_phrase_lies_in_one_of_its_windows(
    trigger: WindowTrigger, after: datetime, tz: ZoneInfo, dst: DstPolicy
) -> None:
    fires = fires_between([trigger], after, after + timedelta(days=2), tz, dst, limit=200)
    for fire in fires:
        if fire.note and "moved from" in fire.note:
            assert dst.gap == "shift"
            continue  # moved out of a gap on purpose, to the first instant after it
        assert in_window(fire.at.replace(tzinfo=None), trigger), fire


@settings(max_examples=200, deadline=None)
@given(trigger=crons, after=moments, tz=zones)
def test_cron_fires_match_the_expression_or_say_why_not(
    trigger: Trigger, after: datetime, tz: ZoneInfo
) -> None:
    assert not isinstance(trigger, WindowTrigger)
    spec = compile_cron(getattr(trigger, "expr", ""))
    fires = fires_between([trigger], after, after + timedelta(days=2), tz, limit=200)
    for fire in fires:
        wall = fire.at.replace(tzinfo=None)
        minute_of_day = wall.hour * 60 + wall.minute
        matches = spec.day_matches(wall.date()) and minute_of_day in spec.day_minutes
        assert matches or (fire.note is not None and "moved from" in fire.note), fire


@settings(max_examples=200, deadline=None)
@given(trigger=crons, after=moments)
def test_without_dst_fires_are_exactly_the_wall_times(trigger: Trigger, after: datetime) -> None:
    tz = ZoneInfo("Asia/Kolkata")
    spec = compile_cron(getattr(trigger, "expr", ""))
    local = after.astimezone(tz).replace(tzinfo=None)
    walls = []
    for wall in spec.walls_from(local):
        if wall > local:
            walls.append(wall)
        if len(walls) == 5:
            break
    fires = fires_between([trigger], after, after + timedelta(days=3650), tz, limit=5)
    assume(len(fires) == 5)
    assert [f.at.replace(tzinfo=None) for f in fires] == walls
    assert all(f.note is None for f in fires)
