import pytest

from talon.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("1m", 60.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s", 93784.0),
        ("90", 90.0),
        (" 2H ", 7200.0),
        ("1.5h", 5400.0),
        (90, 90.0),
        (1.5, 1.5),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["1x", "", "h", "1h1h", "30m1h", "-5", "1 h", True, float("nan"), -1]
)
def test_parse_duration_rejects(text: str | float) -> None:
    with pytest.raises(ValueError, match="expected a number followed by s, m, h or d") as err:
        parse_duration(text)
    assert str(err.value).startswith(f"bad duration '{text}'")


def test_parse_duration_message_is_exact() -> None:
    with pytest.raises(ValueError) as err:
        parse_duration("1x")
    assert str(err.value) == "bad duration '1x': expected a number followed by s, m, h or d"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5400, "1h30m"), (0, "0s"), (59.6, "1m"), (86400, "1d"), (90061, "1d1h1m1s"), (45, "45s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0, 1, 59, 61, 3600, 5400, 86399, 86400 * 9 + 7])
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_duration_rejects_negative() -> None:
    with pytest.raises(ValueError, match="cannot format duration"):
        format_duration(-1)
