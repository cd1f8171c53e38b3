"""Plugin constraints named in talon.yaml (`plugins.constraints: {name: "module:attr"}`).

A plugin is called as `fn(run, options, view, now)` and returns `(verdict, reason)` with
verdict one of pass, block, fail, cancel. The repository's `lib/` directory is importable,
so a team can keep its plugins beside its schedule; so is the repository itself, last (a
module beside talon.yaml, which shadows nothing installed).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def import_target(target: str, root: Path) -> Any:
    module_name, _, attr = target.partition(":")
    lib = str(root / "lib")
    if (root / "lib").is_dir() and lib not in sys.path:
        sys.path.insert(0, lib)
    if str(root) not in sys.path:
        sys.path.append(str(root))
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_constraint_plugins(
    plugins: Mapping[str, str], root: Path
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The plugins that load, by name, and (name, what is wrong) for those that do not."""
    loaded: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for name, target in plugins.items():
        try:
            fn = import_target(target, root)
        except (ImportError, AttributeError, ValueError) as exc:
            errors.append((name, f"plugin constraint '{name}' ({target}) cannot be loaded: {exc}"))
            continue
        if not callable(fn):
            errors.append((name, f"plugin constraint '{name}' ({target}) is not callable"))
            continue
        loaded[name] = fn
    return loaded, errors
