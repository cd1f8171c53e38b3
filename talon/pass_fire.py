"""Step 2 of a pass: fire the triggers that are due, one run each."""

from __future__ import annotations

from datetime import datetime

from talon import bookkeeping
from talon.model import Spec
from talon.pass_recording import Recording
from talon.plan import (
    MISSED_COUNT_CAP,
    ON_TIME_GRACE,
    Decision,
    due_fires,
    fires_from,
    first_cursor,
    period_for,
    refresh_cursor,
    run_for_fire,
)
from talon.runs import iso
from talon.store import run_id_for

# Per state directory: (spec, cursor generation, earliest next due, latest cursor time) as the
# last full walk of `fire` left them; while all four hold, no job can be due.
_FIRE_HORIZON: dict[str, tuple[Spec, int, float, float]] = {}


def _horizon(book: bookkeeping.Book) -> tuple[float, float]:
    due, at = float("inf"), float("-inf")
    for raw in book.cursors.values():
        nd, a = raw.get("next_due"), raw.get("at")
        if isinstance(nd, float | int) and nd < due:
            due = nd
        if isinstance(a, float | int) and a > at:
            at = a
        elif not isinstance(a, float | int):
            at = float("inf")  # unknown: never skip on it
    return due, at


class Firing(Recording):
    """Firing due triggers."""

    def fire(self) -> None:
        latest: datetime | None = None
        now_ts = self.now.timestamp()
        key = str(self.store.root)
        known = _FIRE_HORIZON.get(key)
        if (
            known is not None
            and known[0] is self.spec
            and known[1] == self.book.cursor_generation
            and known[3] <= now_ts < known[2]
        ):
            return  # the same jobs and cursors as the last walk, and nothing due before then
        for name, job in self.spec.jobs.items():
            raw = self.book.cursors.get(name)
            if raw is not None and raw.get("hash") == job.hash:
                # The common case, checked on raw numbers: most jobs are not due.
                due, at = raw.get("next_due"), raw.get("at")
                if (due is None or due > now_ts) and isinstance(at, float | int) and at <= now_ts:
                    continue
            cursor = self.book.cursor(name)
            if cursor is None:
                cursor = first_cursor(job, self.now)
                self.book.set_cursor(name, cursor)
            elif cursor.hash != job.hash:
                # A changed job keeps its place, unless it gained a `start:` beyond it.
                cursor = refresh_cursor(job, fires_from(job, cursor.cursor))
                self.book.set_cursor(name, cursor)
            if (latest is None or cursor.cursor > latest) and (
                job.start is None or cursor.cursor >= job.start
            ):
                latest = cursor.cursor  # (a `start:` still ahead is no pass the clock went back on)
            if cursor.next_due is None or cursor.next_due > self.now:
                continue
            keep, dropped, advanced, unseen = due_fires(job, cursor, self.now)
            for fire in keep:
                late = self.now - fire.at
                kind = "catchup" if late > ON_TIME_GRACE else fire.source
                run = run_for_fire(job, fire, self.now, kind, self.revision())
                note = f" ({fire.note})" if fire.note else ""
                self.create_checked(
                    run, "create", f"{kind} trigger at {iso(fire.at)}{note}", deferrable=True
                )
            # A fire whose run exists (made by a pass that died before saving its cursor) was
            # not missed.
            dropped = [
                f
                for f in dropped
                if not self.store.run_dir(period_for(job, f.at).key, name)
                .joinpath(f"{run_id_for(name, f.at)}.json")
                .exists()
            ]
            if dropped or unseen:
                count = len(dropped) + unseen
                many = f"more than {count - 1:,}" if unseen > MISSED_COUNT_CAP else str(count)
                self.decisions.append(
                    Decision(
                        "missed",
                        name,
                        name,
                        f"{many} missed trigger(s) not run (catchup: {job.catchup.value})",
                    )
                )
            self.book.set_cursor(name, advanced)
        if not self.dry_run:
            _FIRE_HORIZON[key] = (self.spec, self.book.cursor_generation, *_horizon(self.book))
        if latest is not None and latest > self.now:
            # Nothing is lost: triggers already processed stay processed, and new ones fire
            # once the clock passes them again.
            self.problems.append(
                f"the clock ({iso(self.now)}) is earlier than the last pass ({iso(latest)}); "
                "no trigger fires until it catches up"
            )
