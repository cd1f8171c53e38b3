from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from talon.periods import (
    Period,
    PeriodType,
    parse_period_key,
    period_containing,
    period_type_of_key,
)

LONDON = ZoneInfo("Europe/London")
SANTIAGO = ZoneInfo("America/Santiago")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
APIA = ZoneInfo("Pacific/Apia")
KOLKATA = ZoneInfo("Asia/Kolkata")
D, W, M, Q, ONCE = (
    PeriodType.DAILY,
    PeriodType.WEEKLY,
    PeriodType.MONTHLY,
    PeriodType.QUARTERLY,
    PeriodType.ONCE,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def bounds(p: Period) -> tuple[str, str]:
    return p.start.isoformat(), p.end.isoformat()


@pytest.mark.parametrize(
    ("ptype", "instant", "tz", "offset", "key", "start", "end"),
    [
        # ISO week-53 years: the week holding New Year belongs to the old year.
        (
            W,
            "2021-01-01T12:00+00:00",
            LONDON,
            0,
            "2020-W53",
            "2020-12-28T00:00:00+00:00",
            "2021-01-04T00:00:00+00:00",
        ),
        (
            W,
            "2027-01-03T23:59+00:00",
            LONDON,
            0,
            "2026-W53",
            "2026-12-28T00:00:00+00:00",
            "2027-01-04T00:00:00+00:00",
        ),
        (
            W,
            "2027-01-04T00:00+00:00",
            LONDON,
            0,
            "2027-W01",
            "2027-01-04T00:00:00+00:00",
            "2027-01-11T00:00:00+00:00",
        ),
        (
            W,
            "2026-11-27T10:00+00:00",
            LONDON,
            0,
            "2026-W48",
            "2026-11-23T00:00:00+00:00",
            "2026-11-30T00:00:00+00:00",
        ),
        # offset -1 across a year boundary, for every type
        (
            D,
            "2027-01-01T00:00+00:00",
            LONDON,
            -1,
            "2026-12-31",
            "2026-12-31T00:00:00+00:00",
            "2027-01-01T00:00:00+00:00",
        ),
        (
            W,
            "2027-01-04T09:00+00:00",
            LONDON,
            -1,
            "2026-W53",
            "2026-12-28T00:00:00+00:00",
            "2027-01-04T00:00:00+00:00",
        ),
        (
            M,
            "2027-01-15T09:00+00:00",
            LONDON,
            -1,
            "2026-12",
            "2026-12-01T00:00:00+00:00",
            "2027-01-01T00:00:00+00:00",
        ),
        (
            Q,
            "2027-02-15T09:00+00:00",
            LONDON,
            -1,
            "2026-Q4",
            "2026-10-01T00:00:00+01:00",
            "2027-01-01T00:00:00+00:00",
        ),
        (
            Q,
            "2026-12-31T23:59+00:00",
            LONDON,
            1,
            "2027-Q1",
            "2027-01-01T00:00:00+00:00",
            "2027-04-01T00:00:00+01:00",
        ),
        # quarter and month ends; the instant is judged in the job's zone, not UTC
        (
            Q,
            "2026-06-30T23:30+00:00",
            LONDON,
            0,
            "2026-Q3",
            "2026-07-01T00:00:00+01:00",
            "2026-10-01T00:00:00+01:00",
        ),
        (
            M,
            "2024-02-29T23:59:59+00:00",
            LONDON,
            0,
            "2024-02",
            "2024-02-01T00:00:00+00:00",
            "2024-03-01T00:00:00+00:00",
        ),
        (
            M,
            "2026-01-31T18:29:59+00:00",
            KOLKATA,
            0,
            "2026-01",
            "2026-01-01T00:00:00+05:30",
            "2026-02-01T00:00:00+05:30",
        ),
        (
            M,
            "2026-01-31T18:30:00+00:00",
            KOLKATA,
            0,
            "2026-02",
            "2026-02-01T00:00:00+05:30",
            "2026-03-01T00:00:00+05:30",
        ),
        (
            D,
            "2026-03-31T23:00+00:00",
            LONDON,
            0,
            "2026-04-01",
            "2026-04-01T00:00:00+01:00",
            "2026-04-02T00:00:00+01:00",
        ),
        # Santiago: midnight does not exist on 2026-09-06; the day starts at 01:00 (23 hours)
        (
            D,
            "2026-09-06T12:00-03:00",
            SANTIAGO,
            0,
            "2026-09-06",
            "2026-09-06T01:00:00-03:00",
            "2026-09-07T00:00:00-03:00",
        ),
        # Santiago falls back at midnight: 2026-04-04 runs to 24:00 -04 (25 hours)
        (
            D,
            "2026-04-04T23:30-04:00",
            SANTIAGO,
            0,
            "2026-04-04",
            "2026-04-04T00:00:00-03:00",
            "2026-04-05T00:00:00-04:00",
        ),
        (
            D,
            "2011-12-29T23:59-10:00",
            APIA,
            0,
            "2011-12-29",
            "2011-12-29T00:00:00-10:00",
            "2011-12-31T00:00:00+14:00",
        ),
        (
            D,
            "2011-12-31T00:00+14:00",
            APIA,
            0,
            "2011-12-31",
            "2011-12-31T00:00:00+14:00",
            "2012-01-01T00:00:00+14:00",
        ),
        (
            D,
            "2011-12-31T00:00+14:00",
            APIA,
            -1,
            "2011-12-29",
            "2011-12-29T00:00:00-10:00",
            "2011-12-31T00:00:00+14:00",
        ),
    ],
)
def test_period_containing(
    ptype: PeriodType, instant: str, tz: ZoneInfo, offset: int, key: str, start: str, end: str
) -> None:
    p = period_containing(ptype, at(instant), tz, offset)
    assert (p.key, *bounds(p)) == (key, start, end)
    assert parse_period_key(key, tz) == p


@pytest.mark.parametrize(
    ("key", "tz", "hours"),
    [
        ("2026-03-29", LONDON, 23),
        ("2026-10-25", LONDON, 25),
        ("2026-09-06", SANTIAGO, 23),
        ("2026-04-04", SANTIAGO, 25),
        ("2026-10-04", LORD_HOWE, 23.5),
        ("2026-04-05", LORD_HOWE, 24.5),
        ("2026-03-29", KOLKATA, 24),
        ("2011-12-29", APIA, 24),  # ends at the start of the 31st: the 30th never happened
        ("2011-W52", APIA, 6 * 24),
        ("2026-03", LONDON, 31 * 24 - 1),
        ("2026-10", LONDON, 31 * 24 + 1),
    ],
)
def test_dst_periods_have_their_real_length(key: str, tz: ZoneInfo, hours: float) -> None:
    assert parse_period_key(key, tz).duration == timedelta(hours=hours)


def test_skipped_day_has_no_period() -> None:
    with pytest.raises(ValueError, match="'2011-12-30': that day does not exist in Pacific/Apia"):
        parse_period_key("2011-12-30", APIA)
    assert parse_period_key("2011-12-29", APIA).next().key == "2011-12-31"
    assert parse_period_key("2011-12-31", APIA).previous().key == "2011-12-29"
    assert parse_period_key("2011-12-29", APIA).shift(2).key == "2012-01-01"


def test_next_previous_shift() -> None:
    p = parse_period_key("2026-W53", LONDON)
    assert p.next().key == "2027-W01"
    assert p.previous().key == "2026-W52"
    assert p.shift(-53).key == "2025-W52"
    assert p.shift(0) is p
    assert parse_period_key("2026-12", LONDON).next().key == "2027-01"
    assert parse_period_key("2026-Q1", LONDON).previous().key == "2025-Q4"
    assert parse_period_key("2026-12-31", LONDON).next().key == "2027-01-01"
    assert parse_period_key("2024-02-28", LONDON).next().key == "2024-02-29"


def test_contains_is_half_open_and_fold_aware() -> None:
    day = parse_period_key("2026-10-25", LONDON)
    assert day.contains(at("2026-10-25T00:00+01:00"))
    assert not day.contains(at("2026-10-26T00:00+00:00"))
    assert day.contains(at("2026-10-25T23:59:59.999999+00:00"))
    assert not day.contains(at("2026-10-24T23:59:59+01:00"))
    # both 01:30s belong to the day, compared as instants
    assert day.contains(datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=LONDON))
    assert day.contains(at("2026-10-25T00:30:00+00:00").astimezone(UTC))


def test_once() -> None:
    p = period_containing(ONCE, at("2026-11-27T10:00+00:00"), LONDON, offset=-1)
    assert p.key == "once"
    assert bounds(p) == ("1970-01-01T00:00:00+01:00", "9999-12-31T00:00:00+00:00")
    assert parse_period_key("once", LONDON) == p
    assert p.shift(0) is p
    with pytest.raises(ValueError, match="no next or previous"):
        p.next()
    with pytest.raises(ValueError, match="no next or previous"):
        p.previous()


@pytest.mark.parametrize(
    ("key", "ptype"),
    [("2026-11-27", D), ("2026-W48", W), ("2026-11", M), ("2026-Q4", Q), ("once", ONCE)],
)
def test_period_type_of_key(key: str, ptype: PeriodType) -> None:
    assert period_type_of_key(key) is ptype
    assert parse_period_key(key, LONDON).type is ptype
    assert parse_period_key(key, LONDON, ptype).key == key


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("2026-13", "bad period key '2026-13': month must be in 1..12"),
        ("2026-02-30", "bad period key '2026-02-30': day is out of range for month"),
        ("2021-W53", "bad period key '2021-W53': Invalid week: 53"),
        ("2026-W00", "bad period key '2026-W00': Invalid week: 0"),
        ("2026-Q5", "bad period key '2026-Q5': expected one of 2026-11-27 (daily)"),
        ("2026-w48", "bad period key '2026-w48': expected one of"),
        ("", "bad period key '': expected one of"),
        ("2026-11-27T00:00", "bad period key"),
    ],
)
def test_bad_keys(key: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_period_key(key, LONDON)
    assert str(err.value).startswith(message)


def test_key_of_the_wrong_type() -> None:
    with pytest.raises(
        ValueError, match="'2026-11' is monthly, expected a daily key like 2026-11-27"
    ):
        parse_period_key("2026-11", LONDON, PeriodType.DAILY)


def test_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        period_containing(D, datetime(2026, 1, 1), LONDON)


def test_period_for_jobs_in_other_zones_at_the_same_instant() -> None:
    """period_for remembers periods by (type, zone, offset, instant): an instant seen first
    for one zone, or spelled in another zone, still gives each job its own zone's period."""
    from types import SimpleNamespace
    from typing import cast

    from talon.model import Job
    from talon.plan import period_for

    def job(zone: str, offset: int = 0) -> Job:
        return cast(
            Job,
            SimpleNamespace(period_type=PeriodType.DAILY, timezone=zone, period_offset=offset),
        )

    at = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    same = at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert period_for(job("UTC"), at).key == "2026-11-27"
    assert period_for(job("America/New_York"), at).key == "2026-11-26"
    assert period_for(job("America/New_York"), same).key == "2026-11-26"
    assert period_for(job("Asia/Tokyo"), at).key == "2026-11-27"
    assert period_for(job("UTC", -1), same).key == "2026-11-26"
    assert period_for(job("America/New_York"), at).start.utcoffset() == timedelta(hours=-5)
