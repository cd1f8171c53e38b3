"""`talon [-C DIR] COMMAND`: argument parsing and dispatch, nothing else.

Each command lives in `talon/commands/<name>.py` and is imported only when it runs, so that
`talon --help` loads no heavy library. Exit codes: 0 ok, 1 the command's check failed,
2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from talon import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in how the command was called: exit 2 with the message."""


def parse_now(text: str | None, flag: str = "--now") -> datetime:
    """The clock for this call: `--now` (ISO-8601, naive means UTC) or the system clock; a
    time given by another `flag` (`--until`) is read the same way."""
    from datetime import UTC

    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag}: '{text}' is not an ISO-8601 date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def find_repo(directory: str | None, environ: os._Environ[str] | dict[str, str]) -> Path:
    from talon.discover import find_root

    if directory is not None:
        start = Path(directory)
        if not start.is_dir():
            raise UsageError(f"-C {directory}: no such directory")
    elif environ.get("TALON_REPO"):
        start = Path(environ["TALON_REPO"])
    else:
        start = Path.cwd()
    root = find_root(start)
    if root is None:
        raise UsageError(
            f"no talon.yaml in {start.resolve()} or any parent: run `talon init`, or use -C DIR"
        )
    return root


def _add_common(p: argparse.ArgumentParser, *, json: bool = True, now: bool = True) -> None:
    if json:
        p.add_argument("--json", action="store_true", help="machine-readable output")
    if now:
        p.add_argument("--now", metavar="ISO-8601", help="the clock for this call")


class _Skip:
    """Stands in for the parsers of commands not being run: building all of them costs more
    than the rest of a no-op `talon reconcile`."""

    def __getattr__(self, _name: str) -> Any:
        return lambda *_a, **_k: self


_SKIP: Any = _Skip()
COMMANDS = (
    "init",
    "validate",
    "reconcile",
    "plan",
    "watch",
    "status",
    "show",
    "log",
    "explain",
    "next",
    "trigger",
    "cancel",
    "retry",
    "backfill",
    "progress",
    "artifact",
    "resources",
    "fsck",
)


_WIDTH: list[int] = []


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, with the terminal width looked up once, without `shutil` (whose
    import, and a lookup per argument, cost a few milliseconds of every command's start)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            if not _WIDTH:
                columns = os.environ.get("COLUMNS", "")
                if columns.isdigit():
                    _WIDTH.append(int(columns))
                else:
                    try:
                        out = sys.__stdout__
                        _WIDTH.append(os.get_terminal_size(out.fileno()).columns if out else 80)
                    except (ValueError, OSError):
                        _WIDTH.append(80)
            width = _WIDTH[0] - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (`only`) the top level plus that one command's parser."""
    parser = argparse.ArgumentParser(
        prog="talon",
        description="Talon runs periodic batch jobs declared in a git-tracked directory.",
        formatter_class=_Formatter,
    )
    parser.add_argument("-C", dest="directory", metavar="DIR", help="run as if started in DIR")
    parser.add_argument("--version", action="version", version=f"talon {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    class _Sub:
        @staticmethod
        def add_parser(name: str, **kw: Any) -> Any:
            if only not in (None, name):
                return _SKIP
            return subparsers.add_parser(name, formatter_class=_Formatter, **kw)

    sub = _Sub()

    p = sub.add_parser("init", help="create a new repository with a commented example job")
    p.add_argument("dir", nargs="?", default=".")

    p = sub.add_parser("validate", help="check every file against the schemas and the rules")
    _add_common(p, now=False)

    p = sub.add_parser("reconcile", help="one pass: fire, check, allocate, dispatch, collect")
    p.add_argument("--wait", action="store_true", help="repeat until nothing is ready or running")
    _add_common(p)

    p = sub.add_parser("plan", help="what reconcile would do, writing nothing")
    p.add_argument("--until", metavar="TIME", help="simulate the span from --now to TIME")
    _add_common(p)

    p = sub.add_parser("watch", help="reconcile continuously, on file changes and on time")
    p.add_argument(
        "--full-pass", metavar="DURATION", default="60s", help="safety-net pass interval"
    )
    _add_common(p, now=False)

    p = sub.add_parser("status", help="runs of the current periods")
    p.add_argument("--period", metavar="KEY")
    p.add_argument("--job", metavar="NAME")
    _add_common(p)

    for name, text in (("show", "one run in full"), ("log", "one run's output")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run", metavar="RUN", help="run id or path to a run file")
        _add_common(p, json=name == "show", now=False)

    p = sub.add_parser("explain", help="why a job or run is where it is; when it next triggers")
    p.add_argument("target", metavar="JOB|RUN")
    _add_common(p)

    p = sub.add_parser("next", help="a job's next trigger instants")
    p.add_argument("job", metavar="JOB")
    p.add_argument("--count", type=int, default=5, metavar="N")
    _add_common(p)

    p = sub.add_parser("trigger", help="external trigger: create a run and print its id")
    p.add_argument("job", metavar="JOB")
    p.add_argument("--period", metavar="KEY")
    p.add_argument("--param", action="append", default=[], metavar="K=V")
    _add_common(p)

    for name, text in (
        ("cancel", "skip a run, stopping it if running"),
        ("retry", "a new attempt"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("run", metavar="RUN")
        _add_common(p)

    p = sub.add_parser("backfill", help="a run for each period in a range")
    p.add_argument("job", metavar="JOB")
    p.add_argument("--from", dest="from_key", required=True, metavar="KEY")
    p.add_argument("--to", dest="to_key", required=True, metavar="KEY")
    _add_common(p)

    p = sub.add_parser("progress", help="report a run's progress (from inside a job)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--percent", type=float, metavar="P")
    g.add_argument("--item", action="append", metavar="NAME=STATE")
    p.add_argument("--total", type=int, metavar="N")
    p.add_argument("--run", metavar="RUN")
    _add_common(p, json=False)

    p = sub.add_parser("artifact", help="record an artifact of a run (from inside a job)")
    asub = p.add_subparsers(dest="artifact_command", required=True, metavar="add")
    pa = asub.add_parser("add", help="record a URL", formatter_class=_Formatter)
    pa.add_argument("url", metavar="URL")
    pa.add_argument("--name", metavar="N")
    pa.add_argument("--run", metavar="RUN")
    _add_common(pa, json=False)

    p = sub.add_parser("resources", help="the resource tree: capacity, holders, waiters")
    _add_common(p)

    p = sub.add_parser("fsck", help="check the state directory")
    p.add_argument("--repair", action="store_true", help="quarantine and settle what is wrong")
    _add_common(p)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named in argv (skipping -C DIR), if it is one we know."""
    args = list(argv)
    i = 0
    while i < len(args):
        if args[i] == "-C":
            i += 2
            continue
        if args[i].startswith("-"):
            return None
        return args[i] if args[i] in COMMANDS else None
    return None


def _relative_to_directory(args: argparse.Namespace) -> None:
    """`-C DIR` runs as if started in DIR (as `git -C` does): a run file given by a relative
    path is found there, not in the directory Talon was started from."""
    directory = getattr(args, "directory", None)
    if directory is None:
        return
    for name in ("run", "target"):
        ref = getattr(args, name, None)
        if isinstance(ref, str) and ref.endswith(".json") and not os.path.isabs(ref):
            setattr(args, name, os.path.join(directory, ref))


def _printable(message: str) -> str:
    """A message with the control characters of what the user typed (a job name with an
    escape sequence, a NUL) shown as escapes rather than sent to the terminal."""
    return "".join(
        c if c in "\n\t" or (c.isprintable() or c == " ") else repr(c)[1:-1] for c in message
    )


def _no_world_write() -> None:
    """Nothing Talon creates is writable by others, whatever umask it was started with (a
    cron or CI job may run with 000): a world-writable run file, status file or cached
    configuration would let any local user change what Talon records or loads. Runs inherit
    the mask; only the bit for others' writes is added."""
    mask = os.umask(0o777)  # (read by setting: stricter for that instant, never looser)
    os.umask(mask | 0o002)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _no_world_write()
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    _relative_to_directory(args)
    command = str(args.command)
    module = importlib.import_module(f"talon.commands.{command}")
    try:
        code: int = module.run(args, environ=os.environ)
    except UsageError as exc:
        print(f"talon {command}: {_printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except TimeoutError as exc:
        # A lock held longer than we wait: another pass stuck, or (lockfile mode) a marker
        # left by a killed process, which `talon fsck` lists.
        print(f"talon {command}: gave up waiting for a lock: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from talon.problems import ProblemsError
        from talon.store import StoreError

        if isinstance(exc, ProblemsError):  # invalid configuration: every problem, located
            from talon.repo import report_problems

            return report_problems(command, exc)
        if isinstance(exc, StoreError):  # a damaged run file: named, moved aside, reported
            print(f"talon {command}: {_printable(str(exc))}", file=sys.stderr)
            return EXIT_FAILED
        raise
    return code
