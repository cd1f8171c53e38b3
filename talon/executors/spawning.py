"""Process starts off the caller's thread: libc's `posix_spawn` called through ctypes from a
few threads of their own, for a pass that starts many local runs at once.

Why: `os.posix_spawn` keeps the GIL until the child has reached its exec. The kernel's clone
and the child's setup then wait for a CPU, which on a machine busy with the runs started just
before takes 0.3 to 0.6 ms, and the pass did nothing meanwhile. ctypes releases the GIL for
the call, so the pass builds the next run (its Python, its log file) while a spawner thread
waits for this one.

Why more than one thread: each start holds its thread until the child's exec is done, and with
one thread the pass then waited for the starts half the time (500 runs: 190 ms of a 400 ms
dispatch), while a core sat idle between two children's execs. One thread per CPU and one
more keeps a child ready for each core: 500 runs of `true` took 637 ms with one thread, 577
with two and 566 with three on two CPUs (8 and 6 alternating pairs). Starts handed over one
after another may then overlap, and end in either order; the caller records them in the order
it handed them over (`wait` on each).

What the child gets is what `LocalExecutor._spawn` gives it through `os.posix_spawn`: a session
of its own (`POSIX_SPAWN_SETSID`), an empty signal mask, every catchable signal at its default,
stdin from /dev/null and the given dup2s. Nothing else is inherited: Python opens every file
close-on-exec, so a file the pass opens while a spawn is under way does not leak into it.

`Spawner.available()` is false where this cannot work (no glibc-compatible `posix_spawn` with
`POSIX_SPAWN_SETSID`); callers then spawn the usual way.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import queue
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from talon.executors.runner import boot_tick

# <spawn.h> flags, the same in glibc (2.26+) and musl.
_SETSIGDEF = 0x04
_SETSIGMASK = 0x08
_SETSID = 0x80
# The opaque types are 80 (file actions) and 336 (attributes) bytes in glibc and musl on
# 64-bit Linux: room to spare, for the init functions only ever write inside their own.
_ATTR_BYTES = 1024
_ACTIONS_BYTES = 512
_SIGSET_BYTES = 128


_ENTRIES_KEPT = 4096
_MOST_THREADS = 4


def _threads() -> int:
    """One spawner thread per CPU this process may run on, and one more (at most 4)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return min(cpus + 1, _MOST_THREADS)


def _entry(known: dict[tuple[str, str], bytes], item: tuple[str, str]) -> bytes:
    """One environment entry as the child gets it, remembered in `known`; refuses a name
    `os.posix_spawn` would refuse and a NUL byte, which a C string would silently cut short."""
    name = os.fsencode(item[0])
    if not name or b"=" in name:
        raise ValueError(f"illegal environment variable name: {item[0]!r}")
    raw = name + b"=" + os.fsencode(item[1])
    if b"\0" in raw:
        raise ValueError("embedded null byte")
    known[item] = raw
    return raw


@dataclass
class Spawned:
    """A start handed to the spawner; `pid`, `start` and `error` are set (by the spawner
    thread) before `done`."""

    pid: int = 0
    start: int | None = None  # the child's start time in clock ticks, when known exactly
    error: int = 0  # an errno when the spawn failed
    done: bool = False


@dataclass(frozen=True)
class _Order:
    path: bytes
    args: ctypes.Array[ctypes.c_char_p]
    envp: ctypes.Array[ctypes.c_char_p]
    dup2: tuple[tuple[int, int], ...]
    close: int


class Spawner:
    """A few spawner threads taking starts in the order they are handed over (see the module's
    docstring)."""

    _instance: Spawner | None = None

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._spawn = libc.posix_spawn
        self._spawn.argtypes = [
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_char_p,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self._init_actions = libc.posix_spawn_file_actions_init
        self._destroy_actions = libc.posix_spawn_file_actions_destroy
        self._add_open = libc.posix_spawn_file_actions_addopen
        self._add_open.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint,
        ]
        self._add_dup2 = libc.posix_spawn_file_actions_adddup2
        self._add_dup2.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self._attr = ctypes.create_string_buffer(_ATTR_BYTES)
        self._mask = ctypes.create_string_buffer(_SIGSET_BYTES)
        self._defaults = ctypes.create_string_buffer(_SIGSET_BYTES)
        checks = [
            libc.posix_spawnattr_init(self._attr),
            libc.sigemptyset(self._mask),
            libc.sigemptyset(self._defaults),
        ]
        for sig in signal.valid_signals():
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                libc.sigaddset(self._defaults, int(sig))  # (glibc refuses its own two: fine)
        checks += [
            libc.posix_spawnattr_setsigmask(self._attr, self._mask),
            libc.posix_spawnattr_setsigdefault(self._attr, self._defaults),
            libc.posix_spawnattr_setflags(
                self._attr, ctypes.c_short(_SETSID | _SETSIGMASK | _SETSIGDEF)
            ),
        ]
        if any(checks):
            raise OSError("posix_spawn attributes refused")
        # `NAME=value` as bytes, checked, for each (name, value) seen: most of a run's
        # environment is the pass's own, the same for every run, and encoding it all again
        # cost the pass 25 us a run.
        self._entries: dict[tuple[str, str], bytes] = {}
        self._todo: queue.SimpleQueue[tuple[Spawned, _Order] | None] = queue.SimpleQueue()
        self._done = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name=f"talon-spawner-{i}", daemon=True)
            for i in range(_threads())
        ]
        for thread in self._threads:
            thread.start()

    @classmethod
    def available(cls) -> Spawner | None:
        """The process's spawner, started on first use; None where it cannot work."""
        if cls._instance is None:
            if not sys.platform.startswith("linux"):
                return None
            try:
                cls._instance = cls()
            except (OSError, AttributeError):  # no such libc function, or it refused
                return None
        return cls._instance

    def start(
        self,
        path: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        dup2: Sequence[tuple[int, int]],
        close: int,
    ) -> Spawned:
        """Hand over a start of `path` (stdin /dev/null, then `dup2` as (fd, target) pairs).
        `close` is an fd of the caller's to close once the child has its copies (here, if
        the start is refused at once).

        Refuses what `os.posix_spawn` refuses (ValueError): a NUL byte anywhere, which a C
        string would silently cut short, and an environment name that is empty or holds `=`."""
        try:
            encode = os.fsencode
            raw_path = encode(path)
            raw_args = [encode(a) for a in argv]
            if any(b"\0" in a for a in (raw_path, *raw_args)):
                raise ValueError("embedded null byte")
            known = self._entries
            if len(known) > _ENTRIES_KEPT:
                known.clear()  # (the runs' own values, TALON_RUN_ID and such, pile up)
            raw_env = [known.get(kv) or _entry(known, kv) for kv in env.items()]
        except BaseException:
            os.close(close)
            raise
        args = (ctypes.c_char_p * (len(raw_args) + 1))(*raw_args, None)
        envp = (ctypes.c_char_p * (len(raw_env) + 1))(*raw_env, None)
        item = Spawned()
        self._todo.put((item, _Order(raw_path, args, envp, tuple(dup2), close)))
        return item

    def wait(self, item: Spawned) -> Spawned:
        """Block until `item` is done."""
        with self._done:
            while not item.done:
                if not any(t.is_alive() for t in self._threads):  # (they never die)
                    raise OSError(errno.EIO, "the spawner threads are gone")
                self._done.wait(1.0)
        return item

    def _work(self) -> None:
        while True:
            got = self._todo.get()
            if got is None:
                return
            item, order = got
            try:
                item.pid, item.start, item.error = self._one(order)
            except BaseException:  # never leave the caller waiting on a start
                item.error = item.error or errno.EIO
            finally:
                with contextlib.suppress(OSError):
                    os.close(order.close)
                with self._done:
                    item.done = True  # (set last: the caller reads the fields once it sees this)
                    self._done.notify_all()

    def _one(self, order: _Order) -> tuple[int, int | None, int]:
        actions = ctypes.create_string_buffer(_ACTIONS_BYTES)
        if self._init_actions(actions):
            return 0, None, errno.ENOMEM
        try:
            failed = self._add_open(actions, 0, os.devnull.encode(), os.O_RDONLY, 0)
            for fd, target in order.dup2:
                failed = failed or self._add_dup2(actions, fd, target)
            if failed:
                return 0, None, failed
            pid = ctypes.c_int()
            before = boot_tick()
            err = self._spawn(
                ctypes.byref(pid), order.path, actions, self._attr, order.args, order.envp
            )
            # (A child forked between two equal readings of the boot clock started in that
            # tick: runner.boot_tick.)
            start = before if before == boot_tick() else None
            return pid.value, start, err
        finally:
            self._destroy_actions(actions)
