"""The state of one reconcile pass (talon.passes), shared by the steps it is made of."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from talon import bookkeeping
from talon.constraints import PluginFn
from talon.executors.base import Executor
from talon.model import Spec
from talon.passview import PassView
from talon.plan import Decision
from talon.runs import Run
from talon.store import FileStore

if TYPE_CHECKING:
    from talon.pass_deferral import Deferred
    from talon.passes import Carry


@dataclass
class PassState:
    """What a pass holds: its inputs, what it decided, and what it keeps back."""

    spec: Spec
    store: FileStore
    now: datetime
    dry_run: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    decisions: list[Decision] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    book: bookkeeping.Book = field(default_factory=bookkeeping.Book)
    view: PassView | None = None
    _executors: dict[str, Executor] = field(default_factory=dict)
    _plugins: dict[str, PluginFn] | None = None
    _revision: dict[str, Any] | None = None
    _revision_read: bool = False
    changed_jobs: set[str] = field(default_factory=set)
    clock: Callable[[], datetime] | None = None
    # Rewrite the index at the end (a process's last pass) rather than append to its log.
    checkpoint: bool = False

    # Runs born ready in this pass and not yet written (see create_checked).
    pending: dict[str, Run] = field(default_factory=dict)
    # Changes decided and not yet written: run id -> (the run as changed, the changes).
    held: dict[str, tuple[Run, list[Callable[[Run], Run | None]]]] = field(default_factory=dict)
    # Ends collected and decided, written after the dispatch step (see _apply_end), and the
    # job locks held until then.
    ends: list[tuple[Run, Callable[[Run], Run | None]]] = field(default_factory=list)
    _end_locks: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    # `reconcile --wait`: the runs this process started, or created waiting, whose file waits
    # (see Deferred), shared by its passes. None: every file is written in the pass that changed it.
    deferred: dict[str, Deferred] | None = None
    # `reconcile --wait`: the view the last pass of this process left, for the next to go on
    # from (see load). None: every pass reads the open runs.
    carry: Carry | None = None
    # Waiting runs changed in memory since their line in the log (see Recording.write).
    stale: set[str] = field(default_factory=set)
    _began: float = field(default_factory=time.monotonic)
    _status_path: Path | None = None  # this pass's shared status file, once chosen

    @property
    def _abs_root(self) -> str:
        return _absolute(self.spec.config.root)

    @property
    def _abs_state(self) -> str:
        return _absolute(self.store.root)

    def _rel(self, run: Run) -> str:
        return run.relpath

    def decide(self, action: str, run: Run, detail: str = "") -> None:
        self.decisions.append(Decision(action, run.job, run.id, detail))


@functools.lru_cache(maxsize=16)
def _absolute(path: Path) -> str:
    """A directory's resolved path, once per process (it is in every run's environment)."""
    return str(path.resolve())
