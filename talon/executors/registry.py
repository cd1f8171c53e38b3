"""Executor types by name, imported only when a job needs one (fabric alone costs ~200 ms)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, cast

from talon.executors.base import Executor

EXECUTOR_TYPES: Mapping[str, str] = {
    "local": "talon.executors.local:LocalExecutor",
    "inprocess": "talon.executors.inprocess:InprocessExecutor",
    "ssh": "talon.executors.ssh:SshExecutor",
    "sge": "talon.executors.sge:SgeExecutor",
    "slurm": "talon.executors.slurm:SlurmExecutor",
}


def executor_for(
    type_name: str, config: Mapping[str, Any], now: Callable[[], datetime] | None = None
) -> Executor:
    """A new executor of type `type_name` configured by `config` (its talon.yaml entry).
    `now`: the clock the remote executors measure their graces by (the pass's, so that a
    `--now` moves them as it moves every other decision); the local ones keep none.

    Raises ValueError for a type that is not in EXECUTOR_TYPES.
    """
    target = EXECUTOR_TYPES.get(type_name)
    if target is None:
        known = ", ".join(sorted(EXECUTOR_TYPES))
        raise ValueError(f"unknown executor type '{type_name}': expected one of {known}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if now is not None and type_name in _CLOCKED:
        return cast(Executor, cls(config, now=now))
    return cast(Executor, cls(config))


_CLOCKED = frozenset({"ssh", "sge", "slurm"})
