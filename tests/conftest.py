"""Shared fixtures: a CLI runner that calls `talon.cli.main` in-process, and repo builders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example-repo"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


Talon = Callable[..., Result]


@pytest.fixture
def talon(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Talon:
    """Run `talon ARGS...` in this process; returns exit code and captured output."""
    from talon.cli import main

    monkeypatch.delenv("TALON_REPO", raising=False)
    for var in ("TALON_RUN_ID", "TALON_RUN_FILE"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_talon(
    root: Path, *args: str, crash_at: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`talon -C ROOT ARGS...` as another process would run it (none of this process's
    TALON_* variables); `crash_at` sets TALON_CRASH_AT (talon/faults.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALON_")}
    if crash_at:
        env["TALON_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "talon", "-C", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def write_repo(root: Path, files: dict[str, str]) -> Path:
    """A repository from {relative path: text}; talon.yaml defaults to `timezone: UTC`."""
    files = {"talon.yaml": "timezone: UTC\n", **files}
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "state").mkdir(exist_ok=True)
    return root


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    """A private copy of example-repo/ (tests never write into the checkout)."""
    dest = tmp_path / "example-repo"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("state"))
    (dest / "state").mkdir()
    return dest
