"""`talon fsck [--repair]`: check the state directory; repair by quarantining and settling.

Finds unreadable run files, temporary files left by killed writers, open runs missing from
the index, and runs stuck without an owner: running with no handle, or (local and inprocess
runs) whose process is gone without recording an exit status, which the pass `--repair` starts
settles as lost. It never deletes: with `--repair`, damaged and stray files are moved aside
(`<name>.corrupt-<stamp>`, or under `state/.talon/quarantine/`), the index is rebuilt, and the
collect step of a pass settles stuck and finished runs; it fires no trigger and starts nothing
(that is `reconcile`'s). Without `--repair` it writes nothing.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from talon import bookkeeping
from talon.cli import EXIT_FAILED, EXIT_OK, parse_now
from talon.executors.base import Lost
from talon.model import ExecutorConfig, Spec
from talon.output import emit_json
from talon.plan import settle
from talon.repo import open_repo
from talon.runs import OPEN_STATES, Run, State
from talon.store import BOOK_DIR, RUN_SUFFIX, CorruptRun, FileStore, parse_run_file

if TYPE_CHECKING:
    from talon.passes import Pass

_TMP = re.compile(r"^\..+\.tmp-(\d+)$")
# Executors whose runs can be looked at without side effects: a status file and /proc. The
# others (ssh, sge, slurm) are asked over the network or through a queue: only --repair asks.
_LOOKED_AT_HERE = frozenset({"local", "inprocess"})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def scan(
    store: FileStore,
    now: datetime,
    repair: bool,
    executors: Mapping[str, ExecutorConfig] | None = None,
) -> list[dict[str, Any]]:
    """The problems found; `executors` (the configured ones) lets a check also look for runs
    whose process is gone (with `repair`, the pass that follows settles those)."""
    findings: list[dict[str, Any]] = []
    quarantine = store.book / "quarantine"
    # A missing or damaged index is rebuilt from the run files: read without moving any aside,
    # here as in the walk below, which reports (and with `repair` quarantines) the damaged.
    book = bookkeeping.load(store, read=parse_run_file)
    open_found: set[str] = set()
    if not store.root.is_dir():
        return findings
    for dirpath, dirnames, filenames in os.walk(store.root):
        d = Path(dirpath)
        rel_dir = d.relative_to(store.root)
        if rel_dir.parts and rel_dir.parts[0] == BOOK_DIR:
            dirnames[:] = []
            continue
        # Dot-directories are never run directories (no job name starts with a dot): an
        # editor's `.idea/` under a period is someone else's, and left alone whole.
        dirnames[:] = [n for n in dirnames if not n.startswith(".")]
        for name in sorted(filenames):
            path = d / name
            m = _TMP.match(name)
            if m:
                alive = _pid_alive(int(m.group(1)))
                if not alive:
                    findings.append(
                        {"path": str(path), "problem": "temporary file left by a killed writer"}
                    )
                    if repair:
                        quarantine.mkdir(parents=True, exist_ok=True)
                        os.rename(path, quarantine / f"{'_'.join(rel_dir.parts)}_{name}")
                continue
            if not name.endswith(RUN_SUFFIX) or name.startswith("."):
                if name.endswith((".log",)) or ".corrupt-" in name:
                    continue
                if len(rel_dir.parts) == 2:
                    findings.append(
                        {"path": str(path), "problem": "foreign file (ignored by Talon)"}
                    )
                continue
            if len(rel_dir.parts) != 2:
                findings.append(
                    {
                        "path": str(path),
                        "problem": "run file outside state/<period>/<job>/ (ignored)",
                    }
                )
                continue
            try:
                run = (store.read if repair else parse_run_file)(path)
            except FileNotFoundError:
                continue  # (removed meanwhile)
            except CorruptRun as exc:
                finding = {"path": str(path), "problem": f"unreadable: {exc.why}"}
                if exc.moved_to is not None:
                    finding["moved_to"] = str(exc.moved_to)
                findings.append(finding)
                continue
            rel = path.relative_to(store.root).as_posix()
            if run.state in OPEN_STATES:
                open_found.add(rel)
                if rel not in book.open:
                    findings.append(
                        {
                            "path": str(path),
                            "problem": f"{run.state.value} run missing from the index",
                        }
                    )
                if run.state is State.RUNNING and not (run.executor or {}).get("handle"):
                    findings.append(
                        {
                            "path": str(path),
                            "problem": "running with no handle (dispatch interrupted)",
                        }
                    )
                elif run.state is State.RUNNING and not repair and executors is not None:
                    lost = _lost(run, executors)
                    if lost is not None and _unchanged(path, run):
                        settled = settle(run, lost, now, None)  # as --repair's pass would
                        assert settled is not None  # (a loss always settles a run)
                        findings.append(
                            {
                                "path": str(path),
                                "problem": f"running, but its process is gone: {lost.reason};"
                                f" --repair settles it as {settled.state.value} (lost)",
                            }
                        )
    if not repair:  # (--repair's pass writes these, and says so: "recover")
        for rel in sorted(book.unwritten):
            path = store.path_at(rel)
            if not path.exists() and not bookkeeping.held_by_the_living(book.owners.get(rel)):
                findings.append(
                    {
                        "path": str(path),
                        "problem": "fired by a pass that died before writing it (kept in the "
                        "index log); --repair writes it, and the next pass takes it from there",
                    }
                )
    for lock in (
        sorted((store.book / "locks").glob("*.lock")) if (store.book / "locks").is_dir() else []
    ):
        if store.lock_mode == "lockfile":
            # An empty marker is one whose creator died before writing its holder: nobody
            # reclaims it (filelock takes an empty marker for an older version's live hold).
            empty = lock.stat().st_size == 0
            findings.append(
                {
                    "path": str(lock),
                    "problem": "lock marker present (stale if no talon process runs)"
                    if not empty
                    else "lock marker present and empty: its creator died before writing "
                    "its holder, and no pass reclaims it; remove it if no talon process runs",
                }
            )
    if repair:
        book.open = open_found | {p for p in book.open if (store.root / p).is_file()}
        bookkeeping.save(store, book, checkpoint=True)  # under the pass lock run() holds
    return findings


def _settling_pass(spec: Spec, store: FileStore, now: datetime) -> Pass:
    """The pass `--repair` runs: a reconcile pass's collect step alone. It settles what ended
    or was lost (writing what those ends set off, dependants and retries, as runs that wait for
    the next reconcile) and puts back runs whose dispatch was interrupted; it fires no trigger,
    checks no constraint and starts nothing."""
    from talon.passes import Pass

    class Settling(Pass):
        def fire(self) -> None:
            pass

        def check(self) -> None:
            pass

        def dispatch(self, round_: int = 0) -> None:
            pass

    return Settling(spec, store, now)


def _lost(run: Run, executors: Mapping[str, ExecutorConfig]) -> Lost | None:
    """What the pass of --repair would hear from the run's executor, when that is a loss;
    None when it would hear running or finished (the next pass collects a finished run), or
    when the executor cannot be asked here. Asked through `look`, which reads what `poll`
    reads (the status file, /proc) and, unlike it, acts on nothing."""
    info = run.executor or {}
    configured = executors.get(str(info.get("name", "")))
    handle = info.get("handle")
    if configured is None or configured.type not in _LOOKED_AT_HERE or not handle:
        return None  # an executor that is no longer configured, or only asked by --repair
    from talon.executors.registry import executor_for

    executor = executor_for(configured.type, configured.options)
    look = getattr(executor, "look", None)
    status = look(handle) if look is not None else None
    return status if isinstance(status, Lost) else None


def _unchanged(path: Path, run: Run) -> bool:
    """Whether the run file still says what it said: a pass may have collected the run (and
    removed its status file) while it was looked at."""
    try:
        current = parse_run_file(path)
    except (OSError, CorruptRun):
        return False
    return bool(current.state is run.state and current.executor == run.executor)


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    repo = open_repo(args.directory, environ, readonly=not args.repair, partial=not args.repair)
    now = parse_now(args.now)
    if args.repair:
        from talon.passes import PASS_LOCK

        repo.store.ensure()
        with repo.store.locked(PASS_LOCK, timeout=300):  # no pass changes the book meanwhile
            findings = scan(repo.store, now, True)
    else:
        findings = scan(repo.store, now, False, repo.spec.config.executors)
    settled: list[str] = []
    if args.repair:
        settled = [str(d) for d in _settling_pass(repo.spec, repo.store, now).run()]
    if args.json:
        emit_json({"findings": findings, "settled": settled})
    else:
        for f in findings:
            extra = f" (moved to {f['moved_to']})" if f.get("moved_to") else ""
            print(f"{f['path']}: {f['problem']}{extra}")
        for line in settled:
            print(f"repair: {line}")
        if not findings:
            print("state is clean")
    serious = [f for f in findings if not f["problem"].startswith(("foreign", "lock marker"))]
    return EXIT_FAILED if serious and not args.repair else EXIT_OK
