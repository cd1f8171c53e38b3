"""Finding the repository and its configuration files. Kept free of heavy imports: the no-op
reconcile path runs on this alone."""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_FILE = "talon.yaml"


def find_root(start: Path) -> Path | None:
    """The first directory at or above `start` holding talon.yaml."""
    start = start.resolve()
    for d in (start, *start.parents):
        if (d / CONFIG_FILE).is_file():
            return d
    return None


def yaml_files(directory: Path) -> list[Path]:
    """Every .yaml/.yml file below `directory`, sorted; dot-files and dot-directories skipped."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.endswith((".yaml", ".yml")) and not name.startswith("."):
                found.append(Path(dirpath) / name)
    return sorted(found)


def fingerprint(root: Path) -> list[tuple[str, int, int, int]]:
    """(path, size, mtime, inode) of every configuration file: equal means unchanged."""
    paths = [root / CONFIG_FILE, *yaml_files(root / "schedule"), *yaml_files(root / "resources")]
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_size, st.st_mtime_ns, st.st_ino))
    return out
