"""Durations as users write them in YAML: ``30s``, ``1m``, ``2h``, ``1d``, ``1h30m``, ``90``.

A bare number is seconds, matching what ``timeout: 90`` means to anyone coming from cron
wrappers or Kubernetes ``activeDeadlineSeconds``.
"""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_COMPOUND = re.compile(r"(?:\d+(?:\.\d+)?[dhms])+")
_BARE = re.compile(r"\d+(?:\.\d+)?")


def _bad(text: object) -> ValueError:
    return ValueError(f"bad duration '{text}': expected a number followed by s, m, h or d")


def parse_duration(text: str | float) -> float:
    """Seconds in ``text``; raises ValueError with the accepted forms on anything else.

    bool is refused although it is an int: ``timeout: yes`` is a YAML slip, not one second.
    """
    if isinstance(text, bool):
        raise _bad(text)
    if isinstance(text, int | float):
        if not math.isfinite(text) or text < 0:
            raise _bad(text)
        return float(text)
    s = text.strip().lower()
    if _BARE.fullmatch(s):
        return float(s)
    if not _COMPOUND.fullmatch(s):
        raise _bad(text)
    units = [unit for _, unit in _PART.findall(s)]
    # "1m1h" and "1h1h" are almost certainly typos; insist on d, h, m, s order, each once.
    if units != sorted(set(units), key="dhms".index):
        raise _bad(text)
    return float(sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART.findall(s)))


def format_duration(seconds: float) -> str:
    """The shortest ``parse_duration`` spelling of ``seconds``: 5400 -> ``1h30m``, 0 -> ``0s``.

    Fractions of a second are rounded: durations are shown to people, not round-tripped.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"cannot format duration {seconds!r}: expected a finite number >= 0")
    rest = round(seconds)
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
