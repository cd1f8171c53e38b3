"""Creating runs outside a pass (trigger, retry, backfill): under the pass lock, journalled.

Every creator registers the run in the open-run journal before writing its file, and holds
the pass lock while doing so, so a concurrent pass never misses it.
"""

from __future__ import annotations

from talon import bookkeeping
from talon.passes import PASS_LOCK
from talon.runs import Run
from talon.store import FileStore, StoreError


def create_run(store: FileStore, run: Run, *, anywhere: bool = False) -> bool:
    """Create `run`; False when its id is taken: by a file, or by a run a `reconcile --wait`
    keeps back in the index log (written from there, as any pass would). `anywhere`: also
    when a run of another period has the id (an external trigger for a given period is
    stamped with the time it was made, as one for the current period made then is)."""
    store.ensure()
    rel = run.relpath
    with store.locked(PASS_LOCK, timeout=300):
        if anywhere and _taken_elsewhere(store, run.id, rel):
            return False
        if not store.path_at(rel).exists():
            logged = bookkeeping.logged_runs(store, rel).get(rel)
            if logged is not None:
                store.create(logged)
                return False
        bookkeeping.journal_open(store, rel)
        return store.create(run)


def create_unique(store: FileStore, run: Run) -> Run:
    """Create `run`, adding -2, -3… to its id if the id is taken (external triggers)."""
    from dataclasses import replace

    candidate = run
    for n in range(2, 1000):
        if create_run(store, candidate, anywhere=True):
            return candidate
        candidate = replace(run, id=f"{run.id}-{n}")
    raise RuntimeError(f"could not find a free id for {run.id}")


def _taken_elsewhere(store: FileStore, run_id: str, rel: str) -> bool:
    """Whether a run of another period (a file, or a line of the index log) has `run_id`:
    ids name runs on their own (`talon show ID`), so one id must be one run."""
    try:
        found = store.find(run_id)
    except StoreError:
        logged = bookkeeping.logged_run(store, run_id)
        return logged is not None and logged[0] != rel
    return found != store.path_at(rel)
