"""Triggers and the instants they fire at, under Talon's DST rules (SPEC, "Time rules").

Cron expressions and windows name wall-clock times; this module turns them into instants:

- A wall time that does not exist (spring forward) fires once at the first valid instant after
  the gap (``gap: shift``, the default) or not at all (``gap: skip``). This applies to every
  timed trigger, wildcard or not: "30 * * * *" in London on 2026-03-29 fires at 00:30 GMT,
  at 02:00 BST (for the missing 01:30) and at 02:30 BST.
- A wall time that occurs twice (fall back) fires on its first occurrence when the cron hour is
  fixed (a number, list or range), on both when it is ``*`` or stepped; windows count as stepped.
  ``fold: first|last|both`` overrides either.
- Fires are strictly increasing and unique: wall times that land on the same instant (shifted
  out of a gap, or from two triggers of a union) make one fire, whose note says so.

Every fire that a rule moved, merged or limited carries a ``note`` for ``talon next``.

Instants are compared in UTC here: two datetimes sharing a ZoneInfo compare by wall clock,
ignoring ``fold``, which orders 01:45 (first) after 01:15 (second) on a fall-back night, and
a ZoneInfo datetime in a repeated hour never ``==`` one of another zone. So ``Fire.at`` carries
the zone's offset at that instant as a fixed ``timezone``: it prints as the local time with its
offset, and compares and subtracts exactly; ``fire.at.astimezone(tz)`` gives the zone back.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Literal

from talon.cron import CronTrigger, TriggerSyntaxError, compile_cron
from talon.periods import gap_end
from talon.phrase import Window, WindowTrigger, parse_days, parse_phrase, parse_windows, walls_from

__all__ = [
    "AfterTrigger",
    "CronTrigger",
    "DstPolicy",
    "ExternalTrigger",
    "Fire",
    "Trigger",
    "TriggerSyntaxError",
    "Window",
    "WindowTrigger",
    "fires_between",
    "is_timed",
    "next_fire",
    "parse_cron",
    "parse_days",
    "parse_phrase",
    "parse_trigger",
    "parse_triggers",
    "parse_windows",
]

FoldRule = Literal["first", "last", "both"]
# No timed trigger Talon accepts is sparser than "0 0 29 2 *" across 2100 (eight years).
_HORIZON = timedelta(days=366 * 30)
_ZERO = timedelta(0)


@dataclass(frozen=True)
class DstPolicy:
    gap: Literal["shift", "skip"] = "shift"
    fold: FoldRule | None = None  # None: SPEC default (fixed hour: first; */stepped hour: both)

    def __post_init__(self) -> None:
        # Built from YAML by others: a typo must not silently mean the default.
        if self.gap not in ("shift", "skip"):
            raise ValueError(f"dst gap: expected shift or skip, got {self.gap!r}")
        if self.fold not in (None, "first", "last", "both"):
            raise ValueError(f"dst fold: expected first, last or both, got {self.fold!r}")


@dataclass(frozen=True)
class Fire:
    at: datetime  # the instant, with the zone's UTC offset there (a fixed-offset tzinfo)
    note: str | None = None
    source: str = "cron"  # the kind of trigger it came from: cron, or window (extended form)


@dataclass(frozen=True)
class AfterTrigger:
    job: str


@dataclass(frozen=True)
class ExternalTrigger:
    pass


Trigger = CronTrigger | WindowTrigger | AfterTrigger | ExternalTrigger


def parse_cron(expr: str) -> CronTrigger:
    """Validate a 5-field cron expression (or @daily etc.); TriggerSyntaxError if bad."""
    compile_cron(expr)
    return CronTrigger(expr)


def parse_trigger(value: object) -> Trigger:
    """One ``trigger:`` entry as YAML gives it: a cron or phrase string, ``external``,
    ``{after: job}``, ``{cron: ...}`` or ``{windows: [...], days: ...}``.

    A string starting with a letter is a phrase (a cron's minute field never does), so a
    misspelt phrase gets the phrase parser's message rather than "expected 5 fields".
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "external":
            return ExternalTrigger()
        if text[:1].isalpha():
            return parse_phrase(value)
        return parse_cron(value)
    if isinstance(value, Mapping):
        keys = set(value)
        if keys == {"after"} and isinstance(value["after"], str):
            return AfterTrigger(value["after"])
        if keys == {"cron"} and isinstance(value["cron"], str):
            return parse_cron(value["cron"])
        if keys in ({"windows"}, {"windows", "days"}) and isinstance(value["windows"], list):
            return parse_windows(value["windows"], value.get("days"))
    raise TriggerSyntaxError(
        f"bad trigger {value!r}: expected a cron expression, a phrase like "
        '"every 15 minutes between 7-10am", external, {after: JOB} or {windows: [...]}'
    )


def parse_triggers(value: object) -> tuple[Trigger, ...]:
    """``trigger:`` as a whole: one entry or a list of them (a union)."""
    items = value if isinstance(value, list) else [value]
    return tuple(parse_trigger(item) for item in items)


def is_timed(triggers: Iterable[Trigger]) -> bool:
    return any(isinstance(t, CronTrigger | WindowTrigger) for t in triggers)


# -- from wall-clock times to instants ---------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    utc: datetime
    wall: datetime  # the naive wall time the trigger named
    kind: Literal["plain", "moved", "first", "last", "both-first", "both-second"]


def _resolve(
    wall: datetime, tz: tzinfo, gap: str, fold: FoldRule
) -> tuple[datetime, list[_Candidate]]:
    """The instants ``wall`` fires at, and the earliest instant any later wall can resolve to.

    That bound is the first-occurrence reading of ``wall`` (the gap's end for a missing time),
    which never decreases as the wall time grows; see ``_fires_of``. PEP 495 readings tell the
    three cases apart: fold=0 and fold=1 give the same offset for an ordinary time, the
    offset before the change and the one after it otherwise, smaller first in a gap.
    """
    aware = wall.replace(tzinfo=tz)
    before, after = aware.utcoffset(), aware.replace(fold=1).utcoffset()
    assert before is not None and after is not None  # a tzinfo from zoneinfo always answers
    first = (wall - before).replace(tzinfo=UTC)
    if before == after:
        return first, [_Candidate(first, wall, "plain")]
    if before < after:
        shifted = gap_end(wall, tz).astimezone(UTC)
        return shifted, [_Candidate(shifted, wall, "moved")] if gap == "shift" else []
    second = (wall - after).replace(tzinfo=UTC)
    if fold == "first":
        return first, [_Candidate(first, wall, "first")]
    if fold == "last":
        return first, [_Candidate(second, wall, "last")]
    return first, [_Candidate(first, wall, "both-first"), _Candidate(second, wall, "both-second")]


def _fires_of(
    walls: Iterator[datetime],
    tz: tzinfo,
    gap: str,
    fold: FoldRule,
    *,
    after: datetime,
    horizon: datetime,
) -> Iterator[_Candidate]:
    """Candidates after ``after`` (UTC), in instant order (equal instants adjacent).

    A fold's second occurrences come after later wall times' first ones, so those wait in a
    heap until no later wall can resolve before them; everything else goes straight out, which
    keeps next_fire down to the wall times it needs.
    """
    heap: list[tuple[datetime, int, _Candidate]] = []
    counter = itertools.count()
    for wall in walls:
        if wall >= horizon:
            break
        bound, found = _resolve(wall, tz, gap, fold)
        while heap and heap[0][0] <= bound:
            yield heapq.heappop(heap)[2]
        for candidate in found:
            if candidate.utc <= after:
                continue
            if candidate.utc == bound:  # nothing still to come can be earlier
                yield candidate
            else:
                heapq.heappush(heap, (candidate.utc, next(counter), candidate))
    while heap:
        yield heapq.heappop(heap)[2]


_LOOKAHEAD = (timedelta(hours=1), timedelta(hours=3), timedelta(hours=26))


def _start_wall(after: datetime, tz: tzinfo) -> datetime:
    """A wall time early enough that no earlier wall time resolves to an instant after ``after``.

    Only a fall-back shortly after ``after`` can bring a wall time before its local reading
    back into the future, by at most the drop in offset; look ahead for such a drop.
    """
    local = after.astimezone(tz)
    offset = local.utcoffset() or _ZERO
    ahead = min((after + h).astimezone(tz).utcoffset() or _ZERO for h in _LOOKAHEAD)
    return local.replace(tzinfo=None) - max(_ZERO, offset - ahead)


def _candidates(
    trigger: Trigger, after: datetime, tz: tzinfo, dst: DstPolicy
) -> Iterator[_Candidate]:
    start = _start_wall(after, tz)
    if isinstance(trigger, CronTrigger):
        spec = compile_cron(trigger.expr)
        walls = spec.walls_from(start)
        default: FoldRule = "both" if spec.wild_hour else "first"
    elif isinstance(trigger, WindowTrigger):
        walls = walls_from(trigger, start)
        default = "both"
    else:
        return iter(())
    fold = dst.fold or default
    return _fires_of(
        walls, tz, dst.gap, fold, after=after.astimezone(UTC), horizon=start + _HORIZON
    )


def _note(group: list[_Candidate], at: datetime, tz: tzinfo) -> str | None:
    notes: list[str] = []
    moved = sorted({c.wall for c in group if c.kind == "moved"})
    if moved:
        target = f"{at:%H:%M}" if at.date() == moved[0].date() else f"{at:%Y-%m-%d %H:%M}"
        days = " and ".join(sorted({f"{w:%Y-%m-%d}" for w in moved}))
        times = [f"{w:%H:%M}" for w in moved]
        listed = times[0] if len(times) == 1 else ", ".join(times[:-1]) + " and " + times[-1]
        verb = "does" if len(times) == 1 else "do"
        note = f"moved from {listed} ({verb} not exist on {days} in {tz}) to {target}"
        if any(c.kind != "moved" for c in group):
            note += f", merged with the {at:%H:%M} fire"
        elif len(times) > 1:
            note += ", merged into one fire"
        notes.append(note)
    # In a union one trigger may fire a repeated time on both occurrences and another on the
    # first only; the fire happens either way, so say the broader thing, once per wall time.
    noted: set[datetime] = set()
    for candidate in sorted(group, key=lambda c: not c.kind.startswith("both")):
        wall = candidate.wall
        twice = f"{wall:%H:%M} occurs twice on {wall:%Y-%m-%d} in {tz}"
        text = {
            "first": f"{twice}; fired on the first occurrence only",
            "last": f"{twice}; fired on the second occurrence only",
            "both-first": f"{twice}; fires on both, this is the first",
            "both-second": f"{twice}; fires on both, this is the second",
        }.get(candidate.kind)
        if text and wall not in noted:
            noted.add(wall)
            notes.append(text)
    return "; ".join(notes) or None


def _fires(
    triggers: Sequence[Trigger], after: datetime, tz: tzinfo, dst: DstPolicy
) -> Iterator[Fire]:
    if after.tzinfo is None:
        raise ValueError(f"naive datetime {after.isoformat()}: triggers need an aware instant")
    timed = [t for t in triggers if is_timed([t])]
    if not timed:
        return
    sources = ["cron" if isinstance(t, CronTrigger) else "window" for t in timed]
    tagged = [
        zip(_candidates(t, after, tz, dst), itertools.repeat(source))
        for t, source in zip(timed, sources, strict=True)
    ]
    # Within one trigger only wall times moved out of a gap can share an instant, and they
    # come before the rest of their group: any other candidate closes its group at once,
    # without waiting for (and computing) the next one.
    single = len(tagged) == 1
    merged = tagged[0] if single else heapq.merge(*tagged, key=lambda p: p[0].utc)
    group: list[_Candidate] = []
    source = sources[0]  # of the group's first candidate: where two triggers meet, the first
    for candidate, came_from in merged:
        if group and candidate.utc != group[0].utc:
            yield _fire(group, tz, source)
            group = []
        if not group:
            source = came_from
        group.append(candidate)
        if single and candidate.kind != "moved":
            yield _fire(group, tz, source)
            group = []
    if group:
        yield _fire(group, tz, source)


def _fire(group: list[_Candidate], tz: tzinfo, source: str) -> Fire:
    local = group[0].utc.astimezone(tz)
    # A fixed offset makes ``at`` a plain instant: ==, < and - are exact against anything,
    # where a ZoneInfo datetime in a repeated hour compares by wall clock within its zone and
    # never equals a datetime of another zone (PEP 495).
    at = local.replace(tzinfo=timezone(local.utcoffset() or _ZERO), fold=0)
    if all(c.kind == "plain" for c in group):
        return Fire(at, None, source)
    return Fire(at, _note(group, at, tz), source)


# Many jobs share their triggers (every nightly job at 06:00), and a pass asks the same
# question for each of them at the same instants. The answers depend on nothing else, so the
# latest are kept. Keyed by timestamps, not datetimes: two readings of a repeated hour compare
# (and hash) equal within their zone, and are different instants.
_ANSWERS: dict[tuple[object, ...], tuple[Fire, ...]] = {}
_ANSWERS_KEPT = 4096


def _remembered(
    key: tuple[object, ...], compute: Callable[[], tuple[Fire, ...]]
) -> tuple[Fire, ...]:
    try:
        found = _ANSWERS.get(key)
    except TypeError:  # a trigger that cannot be hashed: asked afresh
        return compute()
    if found is None:
        found = compute()
        if len(found) <= 1000:  # (not a job's every minute of the years it was down)
            if len(_ANSWERS) >= _ANSWERS_KEPT:
                _ANSWERS.clear()
            _ANSWERS[key] = found
    return found


def next_fire(
    triggers: Sequence[Trigger], after: datetime, tz: tzinfo, dst: DstPolicy = DstPolicy()
) -> Fire | None:
    """The first fire strictly after ``after``, or None (untimed triggers never fire by time)."""
    key = ("next", tuple(triggers), after.timestamp(), tz, dst)
    found = _remembered(key, lambda: tuple(itertools.islice(_fires(triggers, after, tz, dst), 1)))
    return found[0] if found else None


def fires_between(
    triggers: Sequence[Trigger],
    start: datetime,
    end: datetime,
    tz: tzinfo,
    dst: DstPolicy = DstPolicy(),
    *,
    limit: int | None = None,
) -> list[Fire]:
    """Fires in ``(start, end]``, in order, at most ``limit`` of them."""

    def compute() -> tuple[Fire, ...]:
        end_utc = end.astimezone(UTC)
        within = itertools.takewhile(
            lambda f: f.at.astimezone(UTC) <= end_utc, _fires(triggers, start, tz, dst)
        )
        return tuple(itertools.islice(within, limit))

    key = ("between", tuple(triggers), start.timestamp(), end.timestamp(), tz, dst, limit)
    return list(_remembered(key, compute))
