from datetime import datetime, timedelta
from itertools import islice

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from talon.cron import compile_cron
from talon.triggers import CronTrigger, TriggerSyntaxError, parse_cron


@pytest.mark.parametrize(
    ("expr", "message", "column"),
    [
        ("0 0 30 2 *", "never fires: February has no day 30", 4),
        ("0 0 31 2,4 *", "never fires: February and April have no day 31", 4),
        ("0 0 31 4,6,9 *", "never fires: April, June and September have no day 31", 4),
        ("* * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 3", 5),
        (
            "* * * * * *",
            "expected 5 fields (minute hour day-of-month month day-of-week), got 6",
            10,
        ),
        ("", "expected 5 fields (minute hour day-of-month month day-of-week), got 0", 0),
        ("60 * * * *", "minute 60 is out of range 0-59", 0),
        ("0 24 * * *", "hour 24 is out of range 0-23", 2),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31", 4),
        ("0 0 1 13 *", "month 13 is out of range 1-12", 6),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7", 8),
        ("0 0 * * 1-9", "day-of-week 9 is out of range 0-7", 10),
        ("*/0 * * * *", 'step after / must be a whole number of at least 1, got "0"', 2),
        ("0 9 * * fri/x", 'step after / must be a whole number of at least 1, got "x"', 12),
        ("0 0 L * *", 'expected a number 1-31 in the day-of-month field, got "L"', 4),
        ("0 0 * * 5#3", 'unexpected "#" in the day-of-week field', 9),
        ("0 0 * foo *", 'unknown month name "foo": expected one of jan, feb', 6),
        ("0 0 * * funday", 'unknown day-of-week name "funday": expected one of sun, mon', 8),
        ("1,,2 * * * *", "empty item in the minute field", 2),
        ("0 1-2-3 * * *", 'cannot read "1-2-3" in the hour field', 2),
        ("@reboot", 'unknown cron macro "@reboot": expected one of @yearly', 0),
    ],
)
def test_cron_errors(expr: str, message: str, column: int | None) -> None:
    with pytest.raises(TriggerSyntaxError) as err:
        parse_cron(expr)
    assert err.value.message.startswith(message)
    assert err.value.column == column
    assert str(err.value) == err.value.message


def test_error_pointer_marks_the_column() -> None:
    with pytest.raises(TriggerSyntaxError) as err:
        parse_cron("0 24 * * *")
    assert err.value.pointer() == "0 24 * * *\n  ^"


@pytest.mark.parametrize(
    "expr",
    [
        "*/15 7-9 * * 1-5",
        "0 0 29 2 *",  # leap years only, but it does fire
        "0 0 31 1,2 *",
        "0 0 30 2 1",  # both day fields: fires on Mondays
        "0 22-2 * * *",  # wraps past midnight, as in croniter
        "0 0 * JAN-mar SUN",
        "@daily",
        " @Hourly ",
        "5/15 * * * *",
    ],
)
def test_cron_accepts(expr: str) -> None:
    assert parse_cron(expr) == CronTrigger(expr)


@pytest.mark.parametrize(
    ("expr", "wild"),
    [
        ("30 1 * * *", False),
        ("0 1,2 * * *", False),
        ("0 1-3 * * *", False),
        ("*/5 1 * * *", False),
        ("0 * * * *", True),
        ("0 */2 * * *", True),
        ("0 0-23/2 * * *", True),
        ("@hourly", True),
    ],
)
def test_fixed_or_wildcard_hour(expr: str, wild: bool) -> None:
    assert compile_cron(expr).wild_hour is wild


def test_compiled_expressions_are_cached() -> None:
    assert compile_cron("7 7 * * *") is compile_cron("7 7 * * *")


# croniter is the oracle for plain wall-clock matching (no zone: DST is not its job here).
_minute = st.sampled_from(["*", "0", "*/15", "5,35", "10-20/5", "59", "*/7"])
_hour = st.sampled_from(["*", "0", "1", "*/3", "9-17", "22-2", "23"])
_dom = st.sampled_from(["*", "1", "15", "31", "*/10", "28-31", "29"])
_month = st.sampled_from(["*", "2", "*/4", "jan-mar", "12", "4,6"])
_dow = st.sampled_from(["*", "0", "1-5", "sat,sun", "7", "*/2", "mon"])


@settings(max_examples=200, deadline=None)
@given(
    fields=st.tuples(_minute, _hour, _dom, _month, _dow),
    start=st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1)),
)
def test_wall_matching_agrees_with_croniter(
    fields: tuple[str, str, str, str, str], start: datetime
) -> None:
    expr = " ".join(fields)
    try:
        spec = compile_cron(expr)
    except TriggerSyntaxError as err:
        assert err.message.startswith("never fires")
        return
    start = start.replace(microsecond=0)
    ours = list(islice((w for w in spec.walls_from(start) if w > start), 5))
    it = croniter(expr, start)
    theirs = [it.get_next(datetime) for _ in range(5)]
    assert ours == theirs


def test_walls_start_inclusive_and_round_up() -> None:
    spec = compile_cron("*/30 * * * *")
    start = datetime(2026, 1, 1, 10, 0)
    assert next(spec.walls_from(start)) == start
    assert next(spec.walls_from(start + timedelta(seconds=1))) == datetime(2026, 1, 1, 10, 30)
