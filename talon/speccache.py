"""A cache of the parsed configuration, keyed by the identity of every file it came from.

Parsing YAML costs ~0.6 ms per job definition even with a fast loader; a no-op reconcile over
10,000 jobs must not pay that every minute. The cache is a pickle under `state/.talon/`,
valid while every configuration file has the same path, size, mtime and inode; any change
reparses everything (configuration changes are rare, passes are not).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from talon.discover import fingerprint
from talon.model import Spec
from talon.problems import Problem

CACHE_NAME = "spec.cache"
CACHE_VERSION = 4  # 4: unknown default timezones are left out of the jobs


def _state_dir(root: Path) -> Path:
    # The cache lives in the default state dir; a custom state path only costs the cache.
    return root / "state" / ".talon"


def load_spec_cached(root: Path, *, write: bool = True) -> tuple[Spec | None, list[Problem]]:
    key_now = fingerprint(root)
    cache = _state_dir(root) / CACHE_NAME
    try:
        with open(cache, "rb") as fh:
            version, key, spec, crons = pickle.load(fh)  # noqa: S301 - ours, under state/.talon
        if (
            version == CACHE_VERSION
            and key == key_now
            and isinstance(spec, Spec)
            and spec.config.root == root
        ):
            from talon.cron import remember_compiled

            remember_compiled(crons)
            return spec, []
    except (
        OSError,
        EOFError,
        pickle.PickleError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
    ):
        pass
    from talon.spec import load_spec  # parsing (YAML, schemas): only when the cache misses

    spec, problems = load_spec(root)
    if write and spec is not None and not problems and cache.parent.parent.is_dir():
        try:
            cache.parent.mkdir(exist_ok=True)
            tmp = cache.with_name(f".{CACHE_NAME}.{os.getpid()}")
            with open(tmp, "wb") as fh:
                pickle.dump(
                    (CACHE_VERSION, key_now, spec, _compiled_crons(spec)),
                    fh,
                    protocol=pickle.HIGHEST_PROTOCOL,
                )
            os.replace(tmp, cache)
        except OSError:
            pass
    return spec, problems


def _compiled_crons(spec: Spec) -> dict[str, object]:
    """Every cron of the configuration, compiled (see talon.cron.remember_compiled)."""
    from talon.cron import CronTrigger, compile_cron

    return {
        t.expr: compile_cron(t.expr)
        for job in spec.jobs.values()
        for t in job.triggers
        if isinstance(t, CronTrigger)
    }
