"""The files state store: one JSON file per run under `state/<period-key>/<job>/`.

Guarantees, and how:
- A run file is written whole or not at all: temp file in the same directory, fsync, rename,
  fsync of the directory (skipped only for changes a later pass re-derives: see `update`).
- Group commit: inside `batched()` (a reconcile pass) those fsyncs are deferred, and `sync()`
  makes every write since durable at once with one syncfs(2). A pass syncs before it starts a
  job that could outlive a crash of this host (intent is durable before such a dispatch; see
  Pass._outlives_a_crash_here) and before it ends, so what a finished pass reports is on
  disk. One syncfs costs about one fsync here; 500 runs' worth of per-file fsyncs cost 250 ms.
  Until that sync, a power cut may roll a write back; a file that comes back empty or torn (a
  new file's data not yet on disk) is restored from the copy the pass logged (`wal`, see
  bookkeeping). A process crash loses nothing: the page cache survives it.
- Every read-modify-write happens under the job's lock (a byte of `locks/runs.lock`), and
  re-reads the file inside the lock, so a `talon progress` from a job and a reconcile pass
  never overwrite each other's changes.
- Scheduled runs are created with `O_EXCL` on an id derived from the trigger instant: two
  reconcilers racing on one trigger cannot both create it.
- A file that cannot be parsed is reported with its path and moved aside to
  `<name>.corrupt-<timestamp>`; it is never overwritten or deleted.
- Bookkeeping (locks, the open-run index, cursors, caches) lives under `state/.talon/`, never
  beside run files.

Locking modes (`state.lock_mode` in talon.yaml): `flock` (default) uses kernel record locks,
released by the kernel when a process dies; `lockfile` uses exclusive creation of marker
files, for filesystems where kernel locks are not shared between hosts. See
docs/concurrency.md.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from talon.runs import Run, dumps

if TYPE_CHECKING:
    from talon.model import Config

BOOK_DIR = ".talon"
RUN_SUFFIX = ".json"
FILE_MODE = 0o644  # readable by the team, never world-writable
DIR_MODE = 0o755
PASS_LOCK = "@pass"  # the lock a pass holds throughout (talon.passes)


class StoreError(Exception):
    """A state file problem that a command reports (with the path) instead of crashing."""


class CorruptRun(StoreError):
    def __init__(self, path: Path, why: str, moved_to: Path | None) -> None:
        where = f"; moved aside to {moved_to.name}" if moved_to else ""
        super().__init__(f"{path}: unreadable run file ({why}){where}")
        self.path = path
        self.why = why
        self.moved_to = moved_to


def parse_run_file(path: Path) -> Run:
    """The run in `path`, read and moved nowhere: a damaged file raises CorruptRun (without
    `moved_to`; `FileStore.read` moves it aside), a missing one or a directory named *.json
    (someone's, not a run file) FileNotFoundError."""
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8")
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise FileNotFoundError(errno.ENOENT, "a directory, not a run file", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptRun(path, f"cannot read: {exc}", None) from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("top level is not an object")
        return Run.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        why = "empty file" if not text.strip() else f"{type(exc).__name__}: {exc}"
        raise CorruptRun(path, why, None) from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        _fsync_dir(path)  # opens read-only and fsyncs: a file as well as a directory


_SYNCFS: list[Callable[[int], int] | None] = []


def syncfs_available() -> bool:
    """Whether `sync()` makes the whole filesystem durable (not only this process's files)."""
    if not _SYNCFS:
        _load_syncfs()
    return _SYNCFS[0] is not None


def _load_syncfs() -> None:
    try:
        import ctypes

        _SYNCFS.append(ctypes.CDLL(None, use_errno=True).syncfs)
    except (OSError, AttributeError, ImportError):
        _SYNCFS.append(None)


def _syncfs(directory: Path) -> bool:
    """syncfs(2) on the filesystem holding `directory`: every dirty file on it durable in one
    call. False where there is none (not Linux, no libc symbol) or it failed: callers fall back
    to one fsync per file."""
    if not syncfs_available():
        return False
    fn = _SYNCFS[0]
    assert fn is not None
    fd = os.open(directory, os.O_RDONLY)
    try:
        return fn(fd) == 0
    finally:
        os.close(fd)


Identity = tuple[int, int, int]  # (mtime_ns, size, inode): a file version, for read caches


def identity(st: os.stat_result) -> Identity:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _write_temp(path: Path, text: str, durable: bool) -> tuple[str, Identity]:
    tmp = f"{path.parent}/.{path.name}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.write(fd, text.encode("utf-8"))
        if durable:
            os.fsync(fd)
        # What a later stat of the renamed or linked file says (neither changes mtime).
        return tmp, identity(os.fstat(fd))
    finally:
        os.close(fd)


def write_atomic(
    path: Path, text: str, *, durable: bool = True, durable_dir: bool = True
) -> Identity:
    """Replace `path` with `text` whole: temp file, fsync, rename, fsync of the directory.
    Returns the new file's identity."""
    tmp, ident = _write_temp(path, text, durable)
    os.replace(tmp, path)
    if durable and durable_dir:
        _fsync_dir(path.parent)
    return ident


def create_exclusive(path: Path, text: str, *, durable: bool = True) -> Identity | None:
    """Create `path` with `text` only if it does not exist; None when someone else has, else
    the new file's identity.

    The temp file is linked into place, which fails if the name exists: the file is never
    visible half-written, and exactly one of several racing creators wins.
    """
    tmp, ident = _write_temp(path, text, durable)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return None
    finally:
        os.unlink(tmp)
    if durable:
        _fsync_dir(path.parent)
    return ident


def open_store(config: Config) -> FileStore:
    """The store `talon.yaml` selects (`state.type`). `files` is the one built; another
    implementation would provide the same methods as FileStore and register here."""
    factory = STORES.get(config.state_type)
    if factory is None:
        raise StoreError(f"unknown state type '{config.state_type}'; known: {', '.join(STORES)}")
    return factory(config.state_path, config.lock_mode)


def run_id_for(job: str, at: datetime, suffix: str = "") -> str:
    """Scheduled ids come from the trigger instant (UTC), so racing creators agree on them."""
    from datetime import UTC

    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{job}@{stamp}{suffix}"


def job_of_run_id(run_id: str) -> str:
    return run_id.split("@", 1)[0]


# One descriptor per lock file for the whole process. POSIX record locks belong to the process,
# and closing *any* descriptor of a file drops every lock the process holds on it: two stores
# in one process (a watcher reloading its configuration) must share the descriptor, and it is
# never closed.
_LOCK_FDS: dict[str, int] = {}
_RESERVED = 64  # offsets below this are for named global locks (`@pass`), never for jobs


_HELD: dict[str, int] = {}  # locks this process holds in each lock file


def _lock_fd(path: Path) -> int:
    """The process's descriptor for a lock file; reopened when the file was deleted or
    replaced (someone cleared state/.talon) and no lock is held in the old one, so every
    process locks the same file."""
    key = str(path)
    fd = _LOCK_FDS.get(key)
    if fd is not None and not _HELD.get(key):
        try:
            st, cur = os.fstat(fd), os.stat(path)
            stale = (st.st_dev, st.st_ino) != (cur.st_dev, cur.st_ino)
        except FileNotFoundError:
            stale = True
        if stale:
            os.close(fd)
            fd = None
    if fd is None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        _LOCK_FDS[key] = fd
    return fd


def _offset(name: str) -> int:
    import zlib

    if name.startswith("@"):
        return zlib.crc32(name.encode()) % _RESERVED
    return _RESERVED + zlib.crc32(name.encode()) % (1 << 30)


class _RangeLock:
    """A kernel record lock on one byte of `state/.talon/locks/runs.lock`, at an offset named
    by the job: every job shares one file instead of a lock file each (file creation is what
    costs most on these disks). The kernel drops it when the process dies, so nothing stale is
    left behind; two jobs hashing to one byte only wait for each other. POSIX locks also hold
    across NFS clients, unlike flock on some setups."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.offset = _offset(name)
        self.depth = 0

    def acquire(self, timeout: float) -> None:
        import fcntl
        import time

        if self.depth:
            self.depth += 1
            return
        fd = _lock_fd(self.path)
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self.offset, os.SEEK_SET)
                _HELD[str(self.path)] = _HELD.get(str(self.path), 0) + 1
                break
            except (BlockingIOError, PermissionError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.path}: still locked after {timeout:.0f}s") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        self.depth = 1

    def release(self) -> None:
        import fcntl

        self.depth -= 1
        if self.depth == 0:
            fd = _LOCK_FDS[str(self.path)]
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, self.offset, os.SEEK_SET)
            _HELD[str(self.path)] -= 1


@dataclass
class FileStore:
    """State under `root` (the repository's `state/` directory)."""

    root: Path
    lock_mode: str = "flock"
    _locks: dict[str, Any] = field(default_factory=dict, repr=False)
    # Parsed runs by path, valid while the file's (mtime, size, inode) is unchanged: every write
    # renames a new inode into place, so a changed file never matches.
    _cache: dict[Path, tuple[Identity, Run]] = field(default_factory=dict, repr=False)
    _run_dirs: dict[tuple[str, str], Path] = field(default_factory=dict, repr=False)
    _rel_paths: dict[str, Path] = field(default_factory=dict, repr=False)
    _books: dict[str, tuple[Identity, dict[str, Any]]] = field(default_factory=dict, repr=False)
    _dirs: set[Path] = field(default_factory=set, repr=False)  # known to exist
    # Inside `batched()`: files written since the last `sync()`, not yet durable. None outside.
    _unsynced: list[Path] | None = field(default=None, repr=False)
    _unsynced_since: float = field(default=0.0, repr=False)  # monotonic time of the oldest
    # Inside `batched()`: told each run file's new text as it is written without its fsync
    # (the pass appends it to the index log, from which a file a power cut emptied is restored).
    wal: Callable[[Path, str], None] | None = field(default=None, repr=False)
    # Inside `batched()`: called after each sync that made something durable (the pass notes
    # it in the index log), and one-shot actions waiting for the next sync.
    on_synced: Callable[[], None] | None = field(default=None, repr=False)
    _after_sync: list[Callable[[], None]] = field(default_factory=list, repr=False)
    # While this process holds the pass lock: the files `append` writes to, kept open (see there).
    _passes: int = field(default=0, repr=False)
    _appending: dict[str, int] = field(default_factory=dict, repr=False)

    # --- group commit --------------------------------------------------------------------------

    @contextlib.contextmanager
    def batched(self) -> Iterator[bool]:
        """Defer the fsyncs of durable writes until `sync()` (and at the end, in any case).
        Yields whether this is the outermost batch (an inner one leaves the sync to it)."""
        if self._unsynced is not None:
            yield False
            return
        self._unsynced = []
        try:
            yield True
        finally:
            try:
                self.sync()
            finally:
                self._unsynced = None

    def deferred(self, path: Path) -> bool:
        """Whether a durable write of `path` may skip its fsyncs (noted for the next sync)."""
        if self._unsynced is None:
            return False
        if not self._unsynced:
            self._unsynced_since = time.monotonic()
        self._unsynced.append(path)
        return True

    def sync_if_older(self, seconds: float) -> None:
        """`sync()`, if the oldest write not yet durable is older than `seconds`: bounds what a
        power cut can roll back in a long batch, at one sync per that much time at most."""
        if self._unsynced and time.monotonic() - self._unsynced_since >= seconds:
            self.sync()

    def sync(self) -> None:
        """Make every write since the last sync durable: one syncfs(2), else an fsync of each
        file and its directory. Then what was waiting for it (`when_synced`)."""
        written = self._unsynced
        if written:
            self._unsynced = []
            if not _syncfs(self.root):
                for path in dict.fromkeys(written):
                    _fsync_path(path)
                for directory in dict.fromkeys(p.parent for p in written):
                    _fsync_path(directory)
            if self.on_synced is not None:
                self.on_synced()
        waiting, self._after_sync = self._after_sync, []
        for action in waiting:
            action()

    def when_synced(self, action: Callable[[], None]) -> None:
        """Run `action` once what was written so far is durable: now outside a batch, else
        after the next sync (deleting scratch files that the written state makes redundant)."""
        if self._unsynced is None:
            action()
        else:
            self._after_sync.append(action)

    def makedirs(self, directory: Path) -> None:
        """mkdir -p, once per directory per process (a failing mkdir is not free)."""
        if directory not in self._dirs:
            directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            self._dirs.add(directory)

    @functools.cached_property
    def _range_lock_file(self) -> Path:
        return self.book / "locks" / "runs.lock"

    @functools.cached_property
    def book(self) -> Path:
        return self.root / BOOK_DIR

    def ensure(self) -> None:
        self.makedirs(self.book / "locks")

    # --- paths -------------------------------------------------------------------------------

    def path_at(self, rel: str) -> Path:
        """The path of a file given relative to the state directory (cached: Path() is slow)."""
        found = self._rel_paths.get(rel)
        if found is None:
            found = self._rel_paths[rel] = self.root / rel
        return found

    def run_dir(self, period_key: str, job: str) -> Path:
        key = (period_key, job)
        found = self._run_dirs.get(key)
        if found is None:
            found = self._run_dirs[key] = self.root / period_key / job
        return found

    def run_path(self, period_key: str, job: str, run_id: str) -> Path:
        return self.run_dir(period_key, job) / f"{run_id}{RUN_SUFFIX}"

    def path_of(self, run: Run) -> Path:
        return self.run_path(run.period_key, run.job, run.id)

    def log_path(self, run: Run) -> Path:
        return self.run_dir(run.period_key, run.job) / f"{run.id}.log"

    # --- locks -------------------------------------------------------------------------------

    def _lock(self, name: str) -> Any:
        lock = self._locks.get(name)
        if lock is None:
            if self.lock_mode == "lockfile":
                import filelock

                path = self.book / "locks" / f"{name}.lock"
                lock = filelock.SoftFileLock(str(path), timeout=60, is_singleton=False)
            else:
                lock = _RangeLock(self._range_lock_file, name)
            self._locks[name] = lock
        return lock

    @contextlib.contextmanager
    def locked(self, name: str, timeout: float = 60) -> Iterator[None]:
        """Hold the named lock (a job name, or `@pass`/`@resources` for global ones)."""
        lock = self._lock(name)
        try:
            lock.acquire(timeout=timeout)
        except FileNotFoundError:
            self.ensure()
            lock.acquire(timeout=timeout)
        passes = name == PASS_LOCK
        self._passes += passes
        try:
            yield
        finally:
            self._passes -= passes
            try:
                if not self._passes:
                    self.close_appends()
            finally:
                lock.release()

    # --- appending ---------------------------------------------------------------------------

    def append(
        self, path: str, data: bytes, *, stat: bool = False, keep: bool = False
    ) -> os.stat_result | None:
        """Append `data` in one write (the file made if missing); its stat after, if asked.

        `keep`: while this process holds the pass lock the file stays open between appends:
        the index log gets a line or two per run a pass fires, starts and ends, and opening
        and closing it each time cost more than the write. Only pass lock holders replace or
        truncate the files appended to this way (the index log), and `close_appends` is
        called when one does, so the open file is always the one at `path`."""
        fd = self._appending.get(path)
        if fd is None:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
            if keep and self._passes:
                self._appending[path] = fd
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"{path}: short write ({written} of {len(data)} bytes)")
            return os.fstat(fd) if stat else None
        finally:
            if path not in self._appending:
                os.close(fd)

    def close_appends(self) -> None:
        """Close what `append` keeps open (the file at its path is replaced, or the pass lock
        goes)."""
        kept, self._appending = self._appending, {}
        for fd in kept.values():
            with contextlib.suppress(OSError):
                os.close(fd)

    # --- reading -----------------------------------------------------------------------------

    def read(self, path: Path) -> Run:
        """One run; a damaged file is moved aside and raised as CorruptRun."""
        key = identity(os.stat(path))
        hit = self._cache.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        try:
            run = parse_run_file(path)
        except CorruptRun as exc:
            raise self._quarantine(path, exc.why) from None
        self._cache[path] = (key, run)
        return run

    def unchanged(self, path: Path) -> bool:
        """Whether `path` is still the file this store last read or wrote (one stat)."""
        hit = self._cache.get(path)
        try:
            return hit is not None and hit[0] == identity(os.stat(path))
        except FileNotFoundError:
            return False

    def _quarantine(self, path: Path, why: str) -> CorruptRun:
        from datetime import UTC

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        dest = path.with_name(f"{path.name}.corrupt-{stamp}")
        try:
            os.rename(path, dest)
        except OSError:
            return CorruptRun(path, why, None)
        return CorruptRun(path, why, dest)

    def runs_in(
        self, period_key: str, job: str, on_corrupt: Callable[[CorruptRun], None] | None = None
    ) -> list[Run]:
        """Every run of `job` in one period, oldest first (ids sort by trigger instant)."""
        directory = self.run_dir(period_key, job)
        try:
            names = sorted(
                n for n in os.listdir(directory) if n.endswith(RUN_SUFFIX) and not n.startswith(".")
            )
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            try:
                out.append(self.read(directory / name))
            except FileNotFoundError:
                continue
            except CorruptRun as exc:
                if on_corrupt is not None:
                    on_corrupt(exc)
        out.sort(key=lambda r: (r.created, r.attempt, r.id))
        return out

    def find(self, run_ref: str) -> Path:
        """A run file from an id or a path; raises StoreError when there is none."""
        as_path = Path(run_ref)
        if run_ref.endswith(RUN_SUFFIX) and as_path.is_file():
            # Only a run file of this state directory: commands write to what they find.
            resolved, root = as_path.resolve(), self.root.resolve()
            inside = resolved.relative_to(root).parts if resolved.is_relative_to(root) else ()
            if len(inside) != 3 or inside[0].startswith("."):
                raise StoreError(
                    f"{run_ref}: not a run file of {self.root} (state/<period>/<job>/<run>.json)"
                )
            return as_path
        if "@" not in run_ref or "/" in run_ref:
            raise StoreError(f"no run '{run_ref}': give a run id (job@stamp) or a run file path")
        job = job_of_run_id(run_ref)
        name = f"{run_ref}{RUN_SUFFIX}"
        try:
            periods = sorted(os.listdir(self.root), reverse=True)
        except FileNotFoundError:
            periods = []
        for period in periods:
            if period.startswith("."):
                continue
            candidate = self.root / period / job / name
            if candidate.is_file():
                return candidate
        raise StoreError(f"no run '{run_ref}' under {self.root}")

    def iter_run_files(self) -> Iterator[Path]:
        """Every run file (a full scan: for fsck and index rebuilds, not for passes)."""
        try:
            periods = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return
        for period in periods:
            pdir = self.root / period
            if period.startswith(".") or not pdir.is_dir():
                continue
            for job in sorted(os.listdir(pdir)):
                jdir = pdir / job
                if job.startswith(".") or not jdir.is_dir():
                    continue
                for name in sorted(os.listdir(jdir)):
                    if name.endswith(RUN_SUFFIX) and not name.startswith("."):
                        yield jdir / name

    # --- writing -----------------------------------------------------------------------------

    def create(self, run: Run) -> bool:
        """Create a run file exclusively; False if a run with that id exists already."""
        directory = self.run_dir(run.period_key, run.job)
        self.makedirs(directory)
        path = directory / f"{run.id}{RUN_SUFFIX}"
        text = dumps(run)
        deferred = self.deferred(path)
        ident = create_exclusive(path, text, durable=not deferred)
        if ident is None:
            return False
        if deferred and self.wal is not None:
            self.wal(path, text)
        self._cache[path] = (ident, run)  # what we wrote is what the next read would parse
        return True

    def update(
        self, path: Path, change: Callable[[Run], Run | None], *, durable: bool = True
    ) -> Run:
        """Read, change and write one run under its job's lock. `change` returning None writes
        nothing. The file is re-read inside the lock, so concurrent writers are never lost.

        `durable=False` skips the directory fsync: a power cut may then roll the change back to
        the previous whole file (never a torn one). For changes a later pass re-derives anyway.
        """
        job = path.parent.name
        with self.locked(job):
            current = self.read(path)
            new = change(current)
            if new is None or new == current:
                return current
            text = dumps(new)
            if self.deferred(path):
                # Inside a batch, durable or not: no fsync of its own, logged (a power cut could
                # otherwise leave the file empty), durable with the batch's next sync.
                ident = write_atomic(path, text, durable=False)
                if self.wal is not None:
                    self.wal(path, text)
            else:
                ident = write_atomic(path, text, durable_dir=durable)
            self._cache[path] = (ident, new)
            return new

    # --- bookkeeping -------------------------------------------------------------------------

    def load_book(self, name: str) -> dict[str, Any] | None:
        """A bookkeeping JSON file (index, cursors); None when missing or damaged (rebuilt)."""
        path = self.book / name
        try:
            ident = identity(os.stat(path))
            hit = self._books.get(name)
            if hit is not None and hit[0] == ident:
                return hit[1]  # the passes of one process: what the last one saved
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        self._books[name] = (ident, data)
        return data

    def save_book(self, name: str, data: dict[str, Any], *, durable: bool = False) -> None:
        """Callers hand over `data`: it is kept as the parsed file for the next load.

        Not fsynced unless asked: a power cut that tears or empties it costs one full scan,
        which rebuilds the open runs and each job's cursor from the run files."""
        self.makedirs(self.book)
        text = json.dumps(data, separators=(",", ":"))
        self._books[name] = (write_atomic(self.book / name, text, durable=durable), data)


STORES: dict[str, Callable[[Path, str], FileStore]] = {"files": FileStore}
