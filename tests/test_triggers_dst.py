"""The DST case table: exact instants for spring gaps and fall folds in six zones.

Transitions used (checked against zoneinfo):
- Europe/London: 2026-03-29 01:00 GMT -> 02:00 BST; 2026-10-25 02:00 BST -> 01:00 GMT.
- America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
- Australia/Lord_Howe (30-minute shift): 2026-04-05 02:00 +11 -> 01:30 +10:30;
  2026-10-04 02:00 +10:30 -> 02:30 +11.
- America/Santiago (at midnight): 2026-04-05 00:00 -03 -> 2026-04-04 23:00 -04;
  2026-09-06 00:00 -04 -> 01:00 -03.
- Asia/Kolkata: +05:30 all year, no DST.
- Pacific/Apia: 2011-12-29 23:59:59 -10 -> 2011-12-31 00:00 +14 (the 30th never happened).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from talon.triggers import (
    AfterTrigger,
    DstPolicy,
    ExternalTrigger,
    Fire,
    Trigger,
    fires_between,
    is_timed,
    next_fire,
    parse_cron,
    parse_phrase,
)

SHIFT, SKIP = DstPolicy(), DstPolicy(gap="skip")
FIRST, LAST, BOTH = DstPolicy(fold="first"), DstPolicy(fold="last"), DstPolicy(fold="both")


@dataclass(frozen=True)
class Case:
    id: str
    zone: str
    trigger: str  # a cron expression or a phrase
    after: str
    expected: tuple[str, ...]  # "instant" or "instant | a fragment of its note"
    dst: DstPolicy = SHIFT


def t(text: str) -> Trigger:
    return parse_phrase(text) if text[0].isalpha() else parse_cron(text)


CASES = [
    # -- Europe/London --------------------------------------------------------------------
    Case(
        "london-gap-fixed",
        "Europe/London",
        "30 1 * * *",
        "2026-03-28T12:00:00+00:00",
        (
            "2026-03-29T02:00:00+01:00 | moved from 01:30 (does not exist on 2026-03-29 in Europe/London) to 02:00",
            "2026-03-30T01:30:00+01:00",
        ),
    ),
    Case(
        "london-gap-fixed-skip",
        "Europe/London",
        "30 1 * * *",
        "2026-03-28T12:00:00+00:00",
        (
            "2026-03-30T01:30:00+01:00",
            "2026-03-31T01:30:00+01:00",
        ),
        SKIP,
    ),
    Case(
        "london-gap-stepped",
        "Europe/London",
        "*/30 * * * *",
        "2026-03-29T00:00:00+00:00",
        (
            "2026-03-29T00:30:00+00:00",
            "2026-03-29T02:00:00+01:00 | moved from 01:00 and 01:30 (do not exist on 2026-03-29 in Europe/London) to 02:00, merged with the 02:00 fire",
            "2026-03-29T02:30:00+01:00",
        ),
    ),
    Case(
        "london-gap-wild-hour-fixed-minute",
        "Europe/London",
        "30 * * * *",
        "2026-03-29T00:00:00+00:00",
        (
            "2026-03-29T00:30:00+00:00",
            "2026-03-29T02:00:00+01:00 | moved from 01:30",
            "2026-03-29T02:30:00+01:00",
        ),
    ),
    Case(
        "london-gap-stepped-skip",
        "Europe/London",
        "*/30 * * * *",
        "2026-03-29T00:00:00+00:00",
        (
            "2026-03-29T00:30:00+00:00",
            "2026-03-29T02:00:00+01:00",
            "2026-03-29T02:30:00+01:00",
        ),
        SKIP,
    ),
    Case(
        "london-fold-fixed",
        "Europe/London",
        "30 1 * * *",
        "2026-10-24T12:00:00+01:00",
        (
            "2026-10-25T01:30:00+01:00 | 01:30 occurs twice on 2026-10-25 in Europe/London; fired on the first occurrence only",
            "2026-10-26T01:30:00+00:00",
        ),
    ),
    Case(
        "london-fold-fixed-last",
        "Europe/London",
        "30 1 * * *",
        "2026-10-24T12:00:00+01:00",
        (
            "2026-10-25T01:30:00+00:00 | fired on the second occurrence only",
            "2026-10-26T01:30:00+00:00",
        ),
        LAST,
    ),
    Case(
        "london-fold-fixed-both",
        "Europe/London",
        "30 1 * * *",
        "2026-10-24T12:00:00+01:00",
        (
            "2026-10-25T01:30:00+01:00 | fires on both, this is the first",
            "2026-10-25T01:30:00+00:00 | fires on both, this is the second",
            "2026-10-26T01:30:00+00:00",
        ),
        BOTH,
    ),
    Case(
        "london-fold-wild-hour",
        "Europe/London",
        "30 * * * *",
        "2026-10-25T00:00:00+01:00",
        (
            "2026-10-25T00:30:00+01:00",
            "2026-10-25T01:30:00+01:00 | this is the first",
            "2026-10-25T01:30:00+00:00 | this is the second",
            "2026-10-25T02:30:00+00:00",
        ),
    ),
    Case(
        "london-fold-wild-hour-first",
        "Europe/London",
        "30 * * * *",
        "2026-10-25T00:00:00+01:00",
        (
            "2026-10-25T00:30:00+01:00",
            "2026-10-25T01:30:00+01:00 | first occurrence only",
            "2026-10-25T02:30:00+00:00",
        ),
        FIRST,
    ),
    Case(
        "london-fold-stepped-interleaves",
        "Europe/London",
        "*/20 * * * *",
        "2026-10-25T00:50:00+01:00",
        (
            "2026-10-25T01:00:00+01:00 | this is the first",
            "2026-10-25T01:20:00+01:00 | this is the first",
            "2026-10-25T01:40:00+01:00 | this is the first",
            "2026-10-25T01:00:00+00:00 | this is the second",
            "2026-10-25T01:20:00+00:00 | this is the second",
            "2026-10-25T01:40:00+00:00 | this is the second",
            "2026-10-25T02:00:00+00:00",
        ),
    ),
    # `after` inside the first pass of the fold: the second pass is still to come
    Case(
        "london-after-inside-fold",
        "Europe/London",
        "*/20 * * * *",
        "2026-10-25T01:50:00+01:00",
        (
            "2026-10-25T01:00:00+00:00 | this is the second",
            "2026-10-25T01:20:00+00:00 | this is the second",
        ),
    ),
    Case(
        "london-after-inside-fold-fixed",
        "Europe/London",
        "30 1 * * *",
        "2026-10-25T01:40:00+01:00",
        ("2026-10-26T01:30:00+00:00",),
    ),
    Case(
        "london-window-fold",
        "Europe/London",
        "every 30 minutes between 1am-2am",
        "2026-10-25T00:00:00+01:00",
        (
            "2026-10-25T01:00:00+01:00 | this is the first",
            "2026-10-25T01:30:00+01:00 | this is the first",
            "2026-10-25T01:00:00+00:00 | this is the second",
            "2026-10-25T01:30:00+00:00 | this is the second",
            "2026-10-26T01:00:00+00:00",
        ),
    ),
    Case(
        "london-window-gap",
        "Europe/London",
        "every 30 minutes between 1am-2am",
        "2026-03-29T00:00:00+00:00",
        (
            "2026-03-29T02:00:00+01:00 | moved from 01:00 and 01:30 (do not exist on 2026-03-29 in Europe/London) to 02:00, merged into one fire",
            "2026-03-30T01:00:00+01:00",
        ),
    ),
    Case(
        "london-window-gap-skip",
        "Europe/London",
        "every 30 minutes between 1am-2am",
        "2026-03-29T00:00:00+00:00",
        ("2026-03-30T01:00:00+01:00",),
        SKIP,
    ),
    # -- America/New_York -----------------------------------------------------------------
    Case(
        "new-york-gap-fixed",
        "America/New_York",
        "30 2 * * *",
        "2026-03-07T12:00:00-05:00",
        (
            "2026-03-08T03:00:00-04:00 | moved from 02:30 (does not exist on 2026-03-08 in America/New_York) to 03:00",
            "2026-03-09T02:30:00-04:00",
        ),
    ),
    Case(
        "new-york-fold-fixed",
        "America/New_York",
        "0 1 * * *",
        "2026-10-31T12:00:00-04:00",
        (
            "2026-11-01T01:00:00-04:00 | first occurrence only",
            "2026-11-02T01:00:00-05:00",
        ),
    ),
    Case(
        "new-york-fold-wild-hour",
        "America/New_York",
        "15 * * * *",
        "2026-11-01T00:30:00-04:00",
        (
            "2026-11-01T01:15:00-04:00 | this is the first",
            "2026-11-01T01:15:00-05:00 | this is the second",
            "2026-11-01T02:15:00-05:00",
        ),
    ),
    Case(
        "new-york-gap-window-skip",
        "America/New_York",
        "every 15 minutes between 2am-3am",
        "2026-03-08T00:00:00-05:00",
        ("2026-03-09T02:00:00-04:00",),
        SKIP,
    ),
    # -- Australia/Lord_Howe: 30-minute shifts ----------------------------------------------
    Case(
        "lord-howe-gap-fixed",
        "Australia/Lord_Howe",
        "15 2 * * *",
        "2026-10-03T12:00:00+10:30",
        (
            "2026-10-04T02:30:00+11:00 | moved from 02:15 (does not exist on 2026-10-04 in Australia/Lord_Howe) to 02:30",
            "2026-10-05T02:15:00+11:00",
        ),
    ),
    Case(
        "lord-howe-gap-stepped",
        "Australia/Lord_Howe",
        "*/15 * * * *",
        "2026-10-04T01:50:00+10:30",
        (
            "2026-10-04T02:30:00+11:00 | moved from 02:00 and 02:15",
            "2026-10-04T02:45:00+11:00",
        ),
    ),
    Case(
        "lord-howe-fold-fixed",
        "Australia/Lord_Howe",
        "45 1 * * *",
        "2026-04-04T12:00:00+11:00",
        (
            "2026-04-05T01:45:00+11:00 | first occurrence only",
            "2026-04-06T01:45:00+10:30",
        ),
    ),
    Case(
        "lord-howe-fold-fixed-last",
        "Australia/Lord_Howe",
        "45 1 * * *",
        "2026-04-04T12:00:00+11:00",
        ("2026-04-05T01:45:00+10:30 | second occurrence only",),
        LAST,
    ),
    Case(
        "lord-howe-fold-stepped",
        "Australia/Lord_Howe",
        "*/15 * * * *",
        "2026-04-05T01:20:00+11:00",
        (
            "2026-04-05T01:30:00+11:00 | this is the first",
            "2026-04-05T01:45:00+11:00 | this is the first",
            "2026-04-05T01:30:00+10:30 | this is the second",
            "2026-04-05T01:45:00+10:30 | this is the second",
            "2026-04-05T02:00:00+10:30",
        ),
    ),
    # -- America/Santiago: the change happens at midnight --------------------------------------
    Case(
        "santiago-gap-midnight",
        "America/Santiago",
        "0 0 * * *",
        "2026-09-05T12:00:00-04:00",
        (
            "2026-09-06T01:00:00-03:00 | moved from 00:00 (does not exist on 2026-09-06 in America/Santiago) to 01:00",
            "2026-09-07T00:00:00-03:00",
        ),
    ),
    Case(
        "santiago-gap-midnight-skip",
        "America/Santiago",
        "0 0 * * *",
        "2026-09-05T12:00:00-04:00",
        ("2026-09-07T00:00:00-03:00",),
        SKIP,
    ),
    Case(
        "santiago-gap-hourly",
        "America/Santiago",
        "0 * * * *",
        "2026-09-05T22:30:00-04:00",
        (
            "2026-09-05T23:00:00-04:00",
            "2026-09-06T01:00:00-03:00 | moved from 00:00",
            "2026-09-06T02:00:00-03:00",
        ),
    ),
    Case(
        "santiago-fold-fixed",
        "America/Santiago",
        "30 23 * * *",
        "2026-04-04T12:00:00-03:00",
        (
            "2026-04-04T23:30:00-03:00 | 23:30 occurs twice on 2026-04-04 in America/Santiago",
            "2026-04-05T23:30:00-04:00",
        ),
    ),
    Case(
        "santiago-fold-hourly",
        "America/Santiago",
        "0 * * * *",
        "2026-04-04T22:30:00-03:00",
        (
            "2026-04-04T23:00:00-03:00 | this is the first",
            "2026-04-04T23:00:00-04:00 | this is the second",
            "2026-04-05T00:00:00-04:00",
        ),
    ),
    Case(
        "santiago-window-fold",
        "America/Santiago",
        "every 30 minutes between 11pm and midnight",
        "2026-04-04T12:00:00-03:00",
        (
            "2026-04-04T23:00:00-03:00 | this is the first",
            "2026-04-04T23:30:00-03:00 | this is the first",
            "2026-04-04T23:00:00-04:00 | this is the second",
            "2026-04-04T23:30:00-04:00 | this is the second",
            "2026-04-05T23:00:00-04:00",
        ),
    ),
    # -- Asia/Kolkata: no DST, nothing moves --------------------------------------------------
    Case(
        "kolkata-plain",
        "Asia/Kolkata",
        "30 1 * * *",
        "2026-03-28T12:00:00+05:30",
        (
            "2026-03-29T01:30:00+05:30",
            "2026-03-30T01:30:00+05:30",
        ),
    ),
    Case(
        "kolkata-stepped",
        "Asia/Kolkata",
        "*/45 * * * *",
        "2026-10-25T01:00:00+05:30",
        (
            "2026-10-25T01:45:00+05:30",
            "2026-10-25T02:00:00+05:30",
            "2026-10-25T02:45:00+05:30",
        ),
    ),
    # -- Pacific/Apia: 2011-12-30 never happened ------------------------------------------------
    Case(
        "apia-skipped-day",
        "Pacific/Apia",
        "0 9 * * *",
        "2011-12-29T00:00:00-10:00",
        (
            "2011-12-29T09:00:00-10:00",
            "2011-12-31T00:00:00+14:00 | moved from 09:00 (does not exist on 2011-12-30 in Pacific/Apia) to 2011-12-31 00:00",
            "2011-12-31T09:00:00+14:00",
        ),
    ),
    Case(
        "apia-skipped-day-skip",
        "Pacific/Apia",
        "0 9 * * *",
        "2011-12-29T00:00:00-10:00",
        (
            "2011-12-29T09:00:00-10:00",
            "2011-12-31T09:00:00+14:00",
        ),
        SKIP,
    ),
    Case(
        "apia-skipped-day-stepped",
        "Pacific/Apia",
        "0 */6 * * *",
        "2011-12-29T12:00:00-10:00",
        (
            "2011-12-29T18:00:00-10:00",
            "2011-12-31T00:00:00+14:00 | moved from 00:00, 06:00, 12:00 and 18:00 (do not exist on 2011-12-30 in Pacific/Apia) to 2011-12-31 00:00, merged with the 00:00 fire",
            "2011-12-31T06:00:00+14:00",
        ),
    ),
]


def parse_expected(entry: str) -> tuple[str, str | None]:
    instant, _, note = entry.partition(" | ")
    return instant, note or None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_dst_case(case: Case) -> None:
    tz = ZoneInfo(case.zone)
    after = datetime.fromisoformat(case.after)
    fires: list[Fire] = []
    cursor = after
    for _ in case.expected:  # next_fire from each fire must give the one after it
        fire = next_fire([t(case.trigger)], cursor, tz, case.dst)
        assert fire is not None
        fires.append(fire)
        cursor = fire.at
    got = [f.at.isoformat() for f in fires]
    assert got == [parse_expected(e)[0] for e in case.expected]
    for fire, entry in zip(fires, case.expected, strict=True):
        note = parse_expected(entry)[1]
        if note is None:
            assert fire.note is None, fire
        else:
            assert fire.note is not None and note in fire.note, fire
        assert fire.at.astimezone(tz).isoformat() == fire.at.isoformat()
    # fires_between over the same span agrees with stepping next_fire
    assert fires_between([t(case.trigger)], after, fires[-1].at, tz, case.dst) == fires


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


LONDON = ZoneInfo("Europe/London")


def test_union_merges_equal_instants() -> None:
    triggers: list[Trigger] = [parse_cron("0 9 * * *"), parse_phrase("hourly between 8am-10am")]
    start, end = at("2026-11-27T00:00+00:00"), at("2026-11-27T23:00+00:00")
    fires = fires_between(triggers, start, end, LONDON)
    assert [f.at.isoformat() for f in fires] == [
        "2026-11-27T08:00:00+00:00",
        "2026-11-27T09:00:00+00:00",  # once, though both triggers name it; 10am is excluded
    ]
    assert all(f.note is None for f in fires)


def test_next_fire_is_strictly_after() -> None:
    fire = next_fire([parse_cron("0 9 * * *")], at("2026-11-27T09:00+00:00"), LONDON)
    assert fire == Fire(at("2026-11-28T09:00+00:00"))


def test_after_in_another_zone_is_the_same_instant() -> None:
    fire = next_fire([parse_cron("0 9 * * *")], at("2026-11-27T03:59-05:00"), LONDON)
    assert fire == Fire(at("2026-11-27T09:00+00:00"))


def test_untimed_triggers_never_fire_by_time() -> None:
    untimed: list[Trigger] = [AfterTrigger("x"), ExternalTrigger()]
    assert next_fire(untimed, at("2026-11-27T00:00+00:00"), LONDON) is None
    assert not is_timed(untimed)
    assert is_timed([*untimed, parse_cron("@daily")])
    assert next_fire([], at("2026-11-27T00:00+00:00"), LONDON) is None


def test_fires_between_limit_and_bounds() -> None:
    start, end = at("2026-11-27T00:00+00:00"), at("2026-11-27T03:00+00:00")
    hourly = [parse_phrase("hourly")]
    assert [f.at.hour for f in fires_between(hourly, start, end, LONDON)] == [1, 2, 3]
    assert len(fires_between(hourly, start, end, LONDON, limit=2)) == 2
    assert fires_between(hourly, end, start, LONDON) == []


def test_leap_day_cron_looks_years_ahead() -> None:
    fire = next_fire([parse_cron("0 0 29 2 *")], at("2096-03-01T00:00+00:00"), UTC)
    assert fire is not None and fire.at.isoformat() == "2104-02-29T00:00:00+00:00"


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        next_fire([parse_cron("@daily")], datetime(2026, 1, 1), LONDON)


def test_dst_policy_rejects_typos() -> None:
    with pytest.raises(ValueError, match="dst gap: expected shift or skip, got 'shfit'"):
        DstPolicy(gap="shfit")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dst fold: expected first, last or both, got 'second'"):
        DstPolicy(fold="second")  # type: ignore[arg-type]


def test_union_of_fold_rules_says_the_broader_thing_once() -> None:
    triggers: list[Trigger] = [
        parse_cron("30 1 * * *"),
        parse_phrase("every 30 minutes between 1am-2am"),
    ]
    fire = next_fire(triggers, at("2026-10-25T01:10:00+01:00"), LONDON)
    assert fire == Fire(
        at("2026-10-25T01:30:00+01:00"),
        "01:30 occurs twice on 2026-10-25 in Europe/London; fires on both, this is the first",
    )


def test_remembered_answers_tell_the_two_readings_of_a_repeated_hour_apart() -> None:
    """Answers are kept for the jobs that share a trigger; 01:30 New York on 2026-11-01 is
    two instants (EDT, then EST) that compare equal within their zone, and must not share
    an answer."""
    tz = ZoneInfo("America/New_York")
    triggers = (parse_cron("*/20 * * * *"),)
    first = datetime(2026, 11, 1, 1, 30, tzinfo=tz)
    second = first.replace(fold=1)
    assert first == second  # (why the answers are keyed by timestamp)
    a = next_fire(triggers, first, tz, BOTH)
    b = next_fire(triggers, second, tz, BOTH)
    assert a is not None and b is not None
    assert a.at.timestamp() == first.timestamp() + 10 * 60  # 01:40 EDT
    assert b.at.timestamp() == second.timestamp() + 10 * 60  # 01:40 EST, an hour later
    quarter = timedelta(minutes=15)
    in_edt = fires_between(triggers, first, first.astimezone(UTC) + quarter, tz, BOTH)
    in_est = fires_between(triggers, second, second.astimezone(UTC) + quarter, tz, BOTH)
    assert [f.at for f in in_edt] == [a.at] and [f.at for f in in_est] == [b.at]
