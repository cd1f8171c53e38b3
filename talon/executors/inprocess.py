"""The `inprocess` executor: a Python callable, `package.module:function`, given a run context.

The callable runs in a Talon process of its own: the same detached wrapper as `local` starts
`python -c <bootstrap> ... CALL`, which imports the callable and calls it with a `RunContext`.
So the run outlives the pass that started it, and a crash or `sys.exit` in the job cannot take a
reconcile pass down with it. Everything `local` says about handles, status files, timeouts and
cancel holds here too.

Import path, in order: the entries of the executor's `sys_path` config (relative ones against
the repository, `TALON_REPO`), the repository's `lib/` when it exists, then the working
directory (the repository root by default) and the interpreter's own path.

Exit status: 0 when the callable returns (its return value is ignored), 1 with the traceback in
the log when it raises, n for `SystemExit(n)`, 127 when the callable cannot be imported.

The context reports progress and artifacts straight into the run file (`talon.report`) when
`TALON_RUN_FILE` names one; otherwise it prints marker lines (`talon.markers`) to the log,
which the pass that collects the run folds into the run file.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO

from talon.executors.base import Handle, Status, Submission, SubmitRefused
from talon.executors.local import LocalExecutor
from talon.markers import format_marker

EXIT_CANNOT_IMPORT = 127
_CALL = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
# argv[1] is talon's own directory, appended so that an uninstalled checkout is found too.
_BOOTSTRAP = (
    "import sys;sys.path.append(sys.argv[1]);"
    "from talon.executors.inprocess import main;sys.exit(main(sys.argv[2:]))"
)
_PERIOD_TYPES = (
    ("once", re.compile(r"once")),
    ("daily", re.compile(r"\d{4}-\d{2}-\d{2}")),
    ("weekly", re.compile(r"\d{4}-W\d{2}")),
    ("monthly", re.compile(r"\d{4}-\d{2}")),
    ("quarterly", re.compile(r"\d{4}-Q[1-4]")),
)


class InprocessExecutor:
    """Runs `call: package.module:function` jobs. Config: `sys_path` (list), `kill_grace`."""

    def __init__(
        self, config: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
    ) -> None:
        raw = config.get("sys_path") or []
        if isinstance(raw, str) or not all(isinstance(p, str) for p in raw):
            raise ValueError("inprocess executor: sys_path must be a list of directories")
        self.sys_path: tuple[str, ...] = tuple(raw)
        self._environ = os.environ if environ is None else environ
        self._local = LocalExecutor(config, environ=environ)

    def submit(self, sub: Submission) -> Handle:
        call = sub.command
        if not isinstance(call, str) or not _CALL.fullmatch(call.strip()):
            raise SubmitRefused(
                f"inprocess needs `call: package.module:function`, got {call!r}", retryable=False
            )
        argv: list[str] = [
            sys.executable,
            "-c",
            _BOOTSTRAP,
            str(Path(__file__).resolve().parents[2]),
        ]
        for entry in self._import_path(sub):
            argv += ["--path", entry]
        argv.append(call.strip())
        return self._local.submit(replace(sub, command=tuple(argv)))

    def poll(self, handle: Handle, sub: Submission) -> Status:
        return self._local.poll(handle, sub)

    def look(self, handle: Handle) -> Status:
        return self._local.look(handle)

    def cancel(self, handle: Handle, sub: Submission) -> None:
        self._local.cancel(handle, sub)

    def adopt(self, sub: Submission) -> Handle | None:
        return self._local.adopt(sub)

    def _import_path(self, sub: Submission) -> list[str]:
        repo_text = sub.env.get("TALON_REPO") or self._environ.get("TALON_REPO")
        repo = Path(repo_text) if repo_text else None
        entries = [
            str(repo / p) if repo is not None and not os.path.isabs(p) else p for p in self.sys_path
        ]
        if repo is not None and (repo / "lib").is_dir():
            entries.append(str(repo / "lib"))
        if repo is not None:
            entries.append(str(repo))  # last: a module beside talon.yaml shadows nothing
        return entries


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunContext:
    """What an in-process job gets: who it is, its period and parameters, and a reporter.

    `period` has `type`, `key`, `start` and `end` (ISO-8601 strings; None when not known).
    """

    run_id: str
    job: str
    period: Mapping[str, str | None]
    params: Mapping[str, Any]
    env: Mapping[str, str] = field(repr=False)  # (secrets too: a printed context shows none)
    log: TextIO
    run_file: Path | None = None  # where reports go; None: marker lines in the log
    clock: Callable[[], datetime] = field(default=_utcnow, repr=False)

    def progress(self, percent: float) -> None:
        """Report `percent` (0-100) done."""
        if not 0 <= percent <= 100:
            raise ValueError(f"progress percent must be between 0 and 100, got {percent}")
        self._report("progress", {"kind": "percent", "percent": float(percent)})

    def item(self, name: str, state: str, total: int | None = None) -> None:
        """Report the state of one item (pending, running, succeeded, failed, skipped)."""
        from talon.report import ITEM_STATES, valid_item_state

        if not valid_item_state(state):
            raise ValueError(
                f"item state must be a word such as {', '.join(ITEM_STATES)}, got {state!r}"
            )
        report: dict[str, Any] = {"kind": "items", "items": {name: state}}
        if total is not None:
            report["total"] = int(total)
        self._report("progress", report)

    def artifact(self, url: str, name: str | None = None) -> None:
        """Record a URL the run produced."""
        from talon.report import valid_url

        if not valid_url(url):
            raise ValueError(f"artifact: {url!r} is not a URL (it has no scheme, like https:)")
        self._report("artifact", {"url": url, **({"name": name} if name else {})})

    def _report(self, kind: str, payload: dict[str, Any]) -> None:
        if self.run_file is not None:
            try:
                from talon import report

                if kind == "progress":
                    report.record_progress(self.run_file, payload, self.clock())
                else:
                    report.record_artifact(
                        self.run_file, payload["url"], payload.get("name"), self.clock()
                    )
            except Exception as exc:  # a report must not fail the job; the log keeps it
                print(
                    f"talon: could not record {kind} in {self.run_file} ({exc}); kept in the log",
                    file=self.log,
                )
            else:
                return
        print(format_marker(kind, payload), file=self.log, flush=True)


def context_from_env(environ: Mapping[str, str], log: TextIO) -> RunContext:
    """The run context from the `TALON_*` variables Talon gives every run."""
    key = environ.get("TALON_PERIOD")
    period_type = environ.get("TALON_PERIOD_TYPE") or _period_type(key)
    try:
        params = json.loads(environ.get("TALON_PARAMS") or "{}")
    except ValueError:
        params = {}
    run_file = environ.get("TALON_RUN_FILE")
    return RunContext(
        run_id=environ.get("TALON_RUN_ID", ""),
        job=environ.get("TALON_JOB", ""),
        period=MappingProxyType(
            {
                "type": period_type,
                "key": key,
                "start": environ.get("TALON_PERIOD_START"),
                "end": environ.get("TALON_PERIOD_END"),
            }
        ),
        params=MappingProxyType(params if isinstance(params, dict) else {}),
        env=MappingProxyType(dict(environ)),
        log=log,
        run_file=Path(run_file) if run_file and os.path.isfile(run_file) else None,
    )


def _period_type(key: str | None) -> str | None:
    if key is None:
        return None
    return next((name for name, pattern in _PERIOD_TYPES if pattern.fullmatch(key)), None)


def load_callable(spec: str) -> Callable[[RunContext], object]:
    """`package.module:function` (the attribute may be dotted: `module:Class.method`)."""
    import importlib

    module_name, _, attr_path = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    fn: Callable[[RunContext], object] = target
    return fn


def main(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> int:
    """`[--path DIR]... CALL`: import CALL and call it with the run's context."""
    args = list(argv)
    paths: list[str] = []
    while len(args) >= 2 and args[0] == "--path":
        paths.append(args[1])
        del args[:2]
    if len(args) != 1 or not _CALL.fullmatch(args[0]):
        print(
            "usage: python -m talon.executors.inprocess [--path DIR]... package.module:function",
            file=sys.stderr,
        )
        return 2
    sys.path[:0] = paths
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(
            line_buffering=True
        )  # keep prints and tracebacks in order in the log
    try:
        fn = load_callable(args[0])
    except Exception:  # any import-time failure is the job's, reported in its log
        traceback.print_exc()
        print(f"talon: cannot load {args[0]}", file=sys.stderr)
        return EXIT_CANNOT_IMPORT
    context = context_from_env(environ, sys.stdout)
    try:
        result = fn(context)
    except Exception:  # the job failed; SystemExit and KeyboardInterrupt pass through
        traceback.print_exc()
        return 1
    if isinstance(result, int) and not isinstance(result, bool):
        # As `sys.exit(main())` reads it: a returned int is the exit status (0 succeeds).
        return result % 256
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
