from datetime import datetime, time
from itertools import islice

import pytest

from talon.phrase import WEEKDAYS, WEEKENDS, walls_from
from talon.triggers import (
    AfterTrigger,
    CronTrigger,
    ExternalTrigger,
    TriggerSyntaxError,
    Window,
    WindowTrigger,
    parse_phrase,
    parse_trigger,
    parse_triggers,
    parse_windows,
)

ALL_DAY = (time(0), time(0))


def w(every_min: int, start: time, end: time) -> Window:
    return Window(every_min * 60, start, end)


@pytest.mark.parametrize(
    ("text", "windows", "days"),
    [
        (
            "every 15 minutes between 7-10am, hourly until 4pm, every 5 minutes between 4-5pm",
            (w(15, time(7), time(10)), w(60, time(10), time(16)), w(5, time(16), time(17))),
            None,
        ),
        ("every 30 minutes between 09:00-17:30", (w(30, time(9), time(17, 30)),), None),
        ("every 2 hours between 8am-8pm", (w(120, time(8), time(20)),), None),
        ("hourly", (w(60, *ALL_DAY),), None),
        ("every minute", (w(1, *ALL_DAY),), None),
        ("every hour", (w(60, *ALL_DAY),), None),
        ("Every 15 Minutes Between 9AM and 5PM", (w(15, time(9), time(17)),), None),
        ("every 15 mins from 9:30am to 4:45pm", (w(15, time(9, 30), time(16, 45)),), None),
        ("every 15 minutes between 9-17", (w(15, time(9), time(17)),), None),
        ("every 10 minutes between 11-1pm", (w(10, time(11), time(13)),), None),
        ("every 10 minutes between 11am\u20131pm", (w(10, time(11), time(13)),), None),
        ("hourly from noon", (w(60, time(12), time(0)),), None),
        ("hourly between noon and midnight", (w(60, time(12), time(0)),), None),
        ("hourly until 6am, every 30 minutes", (w(60, time(0), time(6)), w(30, *ALL_DAY)), None),
        ("every 45 minutes between 10pm and 2am", (w(45, time(22), time(2)),), None),
        ("hourly on weekdays", (w(60, *ALL_DAY),), WEEKDAYS),
        ("hourly, on weekends", (w(60, *ALL_DAY),), WEEKENDS),
        ("hourly on mon,wed,fri", (w(60, *ALL_DAY),), frozenset({1, 3, 5})),
        ("hourly on monday and Friday", (w(60, *ALL_DAY),), frozenset({1, 5})),
        ("hourly on fri-mon", (w(60, *ALL_DAY),), frozenset({5, 6, 7, 1})),
        ("hourly on tues, thurs", (w(60, *ALL_DAY),), frozenset({2, 4})),
    ],
)
def test_phrases(text: str, windows: tuple[Window, ...], days: frozenset[int] | None) -> None:
    assert parse_phrase(text) == WindowTrigger(windows, days)


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("every 15", 'expected "minutes" or "hours" after "every 15"', 8),
        ("every 15 seconds", 'expected "minutes" or "hours" after "every 15"', 9),
        ("every", 'expected a number, "minute" or "hour" after "every"', 5),
        ("", 'empty trigger: expected "every ..." or "hourly"', 0),
        ("evry 15 minutes", 'expected "every" or "hourly"', 0),
        ("every 0 minutes", '"every 0" never moves on: expected a number of at least 1', 6),
        (
            "every 15 minutes between",
            'expected a time like 7am, 4:30pm or 16:30 after "every 15 minutes between"',
            24,
        ),
        ("every 15 minutes between 7am 10am", 'expected "-" or "and" after', 29),
        (
            "every 15 minutes between 9-5",
            '"9" could be morning or evening: write 9am, 9pm or 09:00',
            25,
        ),
        ("hourly until 4", '"4" could be morning or evening: write 4am, 4pm or 04:00', 13),
        ("every 15 minutes between 7-10xm", 'expected am or pm after "10", got "xm"', 29),
        ("every 15 minutes between 25:00-26:00", '"25:00" is not a time of day', 25),
        ("every 15 minutes between 9:5-10am", '"9:5" is not a time of day', 25),
        ("every 15 minutes between 9am-9am", 'empty window: "every 15 minutes between 9am-9am"', 0),
        # (not read as 7pm-7am, the way "11-1pm" is 11am-1pm: an end that equals the start)
        ("every 15 minutes between 7-7am", 'empty window: "every 15 minutes between 7-7am"', 0),
        (
            "every 15 minutes between 7-10am hourly",
            'expected "," or "on" after "every 15 minutes between 7-10am"',
            32,
        ),
        ("hourly on blursday", 'unknown day "blursday": expected mon, tue, ..., sun', 10),
        ("hourly on", "expected weekdays, weekends or day names like mon,wed,fri", 9),
        (
            "hourly on weekdays, hourly",
            'the day qualifier comes last: "on ..." applies to the whole trigger',
            20,
        ),
        ("hourly on weekdays 9am", "expected the end of the trigger after the day qualifier", 19),
        ("hourly; daily", 'unexpected ";"', 6),
    ],
)
def test_phrase_errors(text: str, message: str, column: int) -> None:
    with pytest.raises(TriggerSyntaxError) as err:
        parse_phrase(text)
    assert err.value.message.startswith(message)
    assert err.value.column == column
    assert err.value.text == text


def test_the_spec_example_fires_where_it_says() -> None:
    trigger = parse_phrase(
        "every 15 minutes between 7-10am, hourly until 4pm, every 5 minutes between 4-5pm"
    )
    day = [f"{t:%H:%M}" for t in islice(walls_from(trigger, datetime(2026, 11, 27)), 36)]
    assert " ".join(day) == (
        "07:00 07:15 07:30 07:45 08:00 08:15 08:30 08:45 09:00 09:15 09:30 09:45 "
        "10:00 11:00 12:00 13:00 14:00 15:00 "
        "16:00 16:05 16:10 16:15 16:20 16:25 16:30 16:35 16:40 16:45 16:50 16:55 "
        "07:00 07:15 07:30 07:45 08:00 08:15"  # the next day
    )


def test_overnight_window_belongs_to_the_day_it_starts() -> None:
    trigger = parse_phrase("every 45 minutes between 10pm and 2am on fri")
    walls = list(islice(walls_from(trigger, datetime(2026, 11, 26, 23)), 7))
    assert [f"{t:%a %H:%M}" for t in walls] == [
        "Fri 22:00",
        "Fri 22:45",
        "Fri 23:30",
        "Sat 00:15",
        "Sat 01:00",
        "Sat 01:45",
        "Fri 22:00",
    ]


def test_structured_windows() -> None:
    trigger = parse_windows(
        [
            {"every": "15m", "from": "07:00", "to": "10:00"},
            {"every": "1h", "to": "4pm"},
            {"every": 300, "from": time(16), "to": "17:00"},
        ],
        days="weekdays",
    )
    assert trigger == parse_phrase(
        "every 15 minutes between 7-10am, hourly until 4pm, every 5 minutes between 4-5pm "
        "on weekdays"
    )
    assert parse_windows([{"every": "30m"}]) == parse_phrase("every 30 minutes")
    assert parse_windows([{"every": "1h", "days": ["sat", 7]}]).days == WEEKENDS


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "windows: expected at least one window"),
        ([{"from": "07:00"}], "window 1: missing every (e.g. every: 15m)"),
        ([{"every": "15x"}], "window 1: every: bad duration '15x'"),
        ([{"every": "0s"}], "window 1: every must be a whole number of minutes"),
        ([{"every": "90s"}], "window 1: every must be a whole number of minutes"),
        ([{"every": "1m", "from": 700}], 'window 1: from: expected a time in quotes like "07:00"'),
        ([{"every": "1m", "to": "7"}], 'window 1: to: "7" could be morning or evening'),
        ([{"every": "1m", "to": "7pm sharp"}], "window 1: to: expected the end of the time"),
        ([{"every": "1m", "at": "07:00"}], "window 1: unknown key 'at'"),
        ([{"every": "1m", "from": "9am", "to": "09:00"}], "window 1: empty window"),
        ([{"every": "1m", "days": []}], "window 1: no days given, so it would never fire"),
        (
            [{"every": "1m", "days": "mon"}, {"every": "1h", "days": "tue"}],
            "windows: days differ between windows",
        ),
    ],
)
def test_structured_errors(items: list[dict[str, object]], message: str) -> None:
    with pytest.raises(TriggerSyntaxError) as err:
        parse_windows(items)
    assert err.value.message.startswith(message)


@pytest.mark.parametrize(
    ("value", "trigger"),
    [
        ("external", ExternalTrigger()),
        ("30 6 * * *", CronTrigger("30 6 * * *")),
        ("@daily", CronTrigger("@daily")),
        ({"cron": "0 * * * *"}, CronTrigger("0 * * * *")),
        ({"after": "load-prices"}, AfterTrigger("load-prices")),
        ("hourly", parse_phrase("hourly")),
        (
            {"windows": [{"every": "1h"}], "days": "mon"},
            WindowTrigger((w(60, *ALL_DAY),), frozenset({1})),
        ),
    ],
)
def test_parse_trigger(value: object, trigger: object) -> None:
    assert parse_trigger(value) == trigger


def test_parse_triggers_makes_a_union() -> None:
    assert parse_triggers(["external", {"after": "x"}]) == (ExternalTrigger(), AfterTrigger("x"))
    assert parse_triggers("hourly") == (parse_phrase("hourly"),)


def test_a_misspelt_phrase_gets_the_phrase_message() -> None:
    with pytest.raises(TriggerSyntaxError, match='expected "every" or "hourly"'):
        parse_trigger("evry 15 minutes")
    with pytest.raises(TriggerSyntaxError, match="bad trigger"):
        parse_trigger({"after": 3})
