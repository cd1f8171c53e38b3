"""The files a local run's exit status is recorded in, and the handle that names them.

A run's wrapper writes its status to a `.rc` file of its own (runs with a timeout, lockfile
mode) or appends `KEY STATUS UPTIME` (the boot clock when the command ended, from
/proc/uptime: a builtin `read`, no exec) to the status file the runs of one Talon process share
(`state/.talon/proc/p<pid>-<start>[-gen].status`); a cancel leaves a `.cancel` file beside it.
Talon reads them incrementally (`shared_lines`) and removes them once the outcome is in the
run file (`prune_status`, `prune_shared_status`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from talon.executors import runner
from talon.executors.base import Handle, Submission, SubmitRefused


def status_file(sub: Submission) -> Path:
    """Where the wrapper of `sub` records its exit status (a pure function of the submission).

    The run id is unique within its job and period only, so the name also carries a checksum of
    the log path (which names the period), taken from its last components so that a relative
    and an absolute spelling agree.
    """
    tail = "/".join(sub.log_path.parts[-3:])
    crc = zlib.crc32(os.fsencode(tail))
    return Path(os.path.abspath(sub.status_dir)) / f"{sub.job}.{sub.run_id}.{crc:08x}.rc"


def cancel_file(h: LocalHandle) -> str:
    """Where a cancel of the run is recorded (a string: looked for once per run that ends)."""
    if h.key is not None:
        return f"{os.path.dirname(h.rc_file)}/{h.key}.cancel"
    return str(h.rc_file.with_suffix(".cancel"))


@dataclass(frozen=True)
class LocalHandle:
    pid: int | None  # None: adopted from a status file, no process to follow
    start: int | None
    boot: str | None
    rc_file: Path
    submitted: float
    timeout_s: float | None
    key: str | None = None  # the run's line in a shared status file; None: rc_file is its own
    # A spare wrapper's mark (`_TALON_SPARE` in its environment): the run's processes that
    # its shell forked show the spare's environment, not the run's (no TALON_RUN_ID).
    spare: str | None = None

    @classmethod
    def parse(cls, handle: Handle) -> LocalHandle | None:
        try:
            pid = handle.get("pid")
            start = handle.get("start")
            timeout = handle.get("timeout_s")
            return cls(
                pid=int(pid) if pid is not None else None,
                start=int(start) if start is not None else None,
                boot=str(handle["boot"]) if handle.get("boot") else None,
                rc_file=_path(str(handle["rc_file"])),
                submitted=float(handle.get("submitted") or 0.0),
                timeout_s=float(timeout) if timeout is not None else None,
                key=str(handle["key"]) if handle.get("key") else None,
                spare=str(handle["spare"]) if handle.get("spare") else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def as_json(self) -> Handle:
        return {
            "pid": self.pid,
            "start": self.start,
            "boot": self.boot,
            "rc_file": str(self.rc_file),
            "submitted": round(self.submitted, 3),
            "timeout_s": self.timeout_s,
            "key": self.key,
            **({"spare": self.spare} if self.spare is not None else {}),
        }


def clear_status(rc_file: Path) -> None:
    """Make the status directory exist and hold nothing from an earlier attempt of this run."""
    for path in (rc_file, rc_file.with_suffix(".cancel")):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except NotADirectoryError as exc:
            raise SubmitRefused(
                f"status directory {rc_file.parent} is not a directory", retryable=False
            ) from exc
    make_status_dir(rc_file.parent)


@functools.lru_cache(maxsize=64)
def _path(text: str) -> Path:
    return Path(text)  # (the runs of one process share their status file: made once)


_DIRS: set[Path] = set()  # status directories known to exist


def make_status_dir(directory: Path) -> None:
    if directory in _DIRS:
        return
    if directory.exists() and not directory.is_dir():
        raise SubmitRefused(f"status directory {directory} is not a directory", retryable=False)
    directory.mkdir(parents=True, exist_ok=True)
    _DIRS.add(directory)


_STATUS = re.compile(r"(\d{1,3})\n")


def status_of(h: LocalHandle) -> tuple[int | None, str]:
    if h.key is None:
        return read_status(h.rc_file)
    known = _SHARED.get(h.rc_file)
    raw = known[3].get(h.key) if known is not None else None
    if raw is None or raw.startswith("+"):
        # Not read yet (a run's line is its last word: once read, it is not read again).
        raw = shared_lines(h.rc_file).get(h.key)
    if raw is None or raw.startswith("+"):  # none yet, or only a spare's "started" line
        return None, ""
    code = raw.split(" ", 1)[0]  # (then, from wrappers that know it, when it ended)
    return (int(code), raw) if code.isdigit() and len(code) <= 3 else (None, raw)


def ended_at(h: LocalHandle, raw: str, current_boot: str | None) -> float | None:
    """When the run's command ended (epoch seconds), as its wrapper recorded it; None when
    that is not known. A shared status line carries the boot clock (/proc/uptime) at the
    end, which only means something within the boot it was read in (`raw`: the line's status
    text, as `status_of` returned it); an own `.rc` file was written at the end."""
    if h.key is None:
        try:
            return os.stat(h.rc_file).st_mtime
        except OSError:
            return None
    fields = raw.split()
    if len(fields) < 2 or h.boot is None or h.boot != current_boot:
        return None
    try:
        uptime = float(fields[1])
    except ValueError:
        return None
    import time

    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - uptime)


# Shared status files as read so far: path -> (identity, first bytes, bytes consumed,
# key -> status text). The first bytes tell a file pruned and made again (which may get the
# same inode number) from the one read before.
_SHARED: dict[Path, tuple[tuple[int, int], bytes, int, dict[str, str]]] = {}


def shared_lines(path: Path) -> dict[str, str]:
    """The complete lines of a shared status file, by key; only what was appended since the
    last look is read (a line without its newline is still being written: not yet)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        _SHARED.pop(path, None)
        return {}
    try:
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino)
        known = _SHARED.get(path)
        if (
            known is None
            or known[0] != ident
            or known[2] > st.st_size
            or (known[1] and os.pread(fd, len(known[1]), 0) != known[1])
        ):
            known = (ident, b"", 0, {})
        _, head, offset, lines = known
        if st.st_size > offset:
            data = os.pread(fd, st.st_size - offset, offset)
            end = data.rfind(b"\n") + 1
            for line in data[:end].decode("utf-8", "replace").splitlines():
                key, _, status = line.partition(" ")
                if key:
                    lines[key] = status
            if not head:
                head = data[: min(end, 64)]
            offset += end
        _SHARED[path] = (ident, head, offset, lines)
        return lines
    finally:
        os.close(fd)


def prune_status(handle: Handle) -> None:
    """Remove the status files of a run whose outcome is recorded (and durable): its `.rc`
    and `.cancel` files, or, in a shared status file, only its `.cancel` (the shared file is
    its other runs' too: see `prune_shared_status`). Never anything outside a `proc` status
    directory under `.talon`."""
    h = LocalHandle.parse(handle)
    if h is None or "/.talon/proc/" not in str(h.rc_file):
        return
    for path in (cancel_file(h), None if h.key is not None else h.rc_file):
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)


def shared_status_name(generation: int = 0) -> str:
    """This process's shared status file name: its pid and start time, so that a later process
    with the same pid never appends to it, and a generation (a long-lived process moves on to
    a new file now and then)."""
    me = runner.read_proc(os.getpid())
    base = f"p{os.getpid()}-{me.start if me is not None else 0}"
    return f"{base}.status" if generation == 0 else f"{base}-{generation}.status"


def prune_shared_status(
    status_dir: Path, named: set[str], current: str | None, *, others: bool = True
) -> list[Path]:
    """Remove the shared status files no open run names (`named`: the rc_file of every open run
    with a key) that no process will append to again: their process is gone, or it is this
    one and the file is not `current` (the one it still starts runs with; None at its end).
    `others`: also the files of other processes. Only a caller that has restored the runs the
    index log holds and adopted every running run without a handle may say so: such a run's
    status is named by nothing yet. Their runs' outcomes must be durable first. Returns what
    was removed."""
    removed: list[Path] = []
    try:
        names = os.listdir(status_dir)
    except FileNotFoundError:
        return removed
    me = _me()
    for name in names:
        owner = owner_of(name)
        path = status_dir / name
        if owner is None or str(path) in named:
            continue  # (a name not of this form is not ours to judge)
        if owner == me and name == current:
            continue
        if owner != me and (not others or _owner_alive(owner)):
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        _SHARED.pop(path, None)
        removed.append(path)
    return removed


def owner_of(name: str) -> list[str] | None:
    """[pid, start] of the process a shared status file belongs to (`p<pid>-<start>[-gen]`)."""
    m = re.fullmatch(r"p(\d+)-(\d+)(?:-\d+)?\.status", name)
    return [m.group(1), m.group(2)] if m else None


@functools.cache
def _me() -> list[str]:
    owner = owner_of(shared_status_name())
    assert owner is not None
    return owner


def _owner_alive(owner: list[str]) -> bool:
    found = runner.read_proc(int(owner[0]))
    return found is not None and not found.dead and found.start == int(owner[1])


def read_status(rc_file: Path) -> tuple[int | None, str]:
    """(exit status, raw text): the status only when a complete line is there."""
    try:
        with open(rc_file, "rb") as fh:
            raw = fh.read(64).decode("ascii", "replace")
    except (FileNotFoundError, NotADirectoryError):
        return None, ""
    m = _STATUS.fullmatch(raw)
    return (int(m.group(1)), raw) if m else (None, raw)
