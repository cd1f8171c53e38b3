"""Command-line conventions: discovery, exit codes, lazy imports, --now, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Talon, write_repo

JOB = "jobs:\n  hello:\n    command: echo hello\n    trigger: '0 6 * * *'\n"


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from talon.cli import build_parser\n"
        "build_parser().format_help()\n"
        "names = ('fabric', 'paramiko', 'jsonschema', 'ruamel', 'croniter', 'watchdog')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_usage_error_exits_2(talon: Talon) -> None:
    assert talon("no-such-command").code == 2
    assert talon("next").code == 2  # missing JOB


def test_no_repository_is_a_usage_error(
    tmp_path: Path, talon: Talon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = talon("status")
    assert result.code == 2
    assert "no talon.yaml" in result.err


def test_repository_found_by_walking_up(
    tmp_path: Path, talon: Talon, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_repo(tmp_path, {"schedule/a.yaml": JOB})
    deep = tmp_path / "schedule" / "x" / "y"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    result = talon("next", "hello", "--count", "1", "--now", "2026-11-27T00:00:00Z")
    assert result.code == 0
    assert result.lines == ["2026-11-27T06:00:00+00:00"]


def test_talon_repo_environment(
    tmp_path: Path, talon: Talon, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_repo(tmp_path / "r", {"schedule/a.yaml": JOB})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TALON_REPO", str(tmp_path / "r"))
    assert talon("next", "hello", "--now", "2026-11-27T07:00:00Z", "--count", "2").lines == [
        "2026-11-28T06:00:00+00:00",
        "2026-11-29T06:00:00+00:00",
    ]


def test_bad_now_is_a_usage_error(tmp_path: Path, talon: Talon) -> None:
    write_repo(tmp_path, {"schedule/a.yaml": JOB})
    result = talon("-C", str(tmp_path), "next", "hello", "--now", "yesterday")
    assert result.code == 2
    assert "--now" in result.err


def test_unknown_job_suggests(tmp_path: Path, talon: Talon) -> None:
    write_repo(tmp_path, {"schedule/a.yaml": JOB})
    result = talon("-C", str(tmp_path), "next", "helo")
    assert result.code == 2
    assert "did you mean 'hello'" in result.err


def test_invalid_configuration_refuses_to_reconcile(tmp_path: Path, talon: Talon) -> None:
    write_repo(tmp_path, {"schedule/a.yaml": "jobs:\n  a:\n    comand: x\n"})
    result = talon("-C", str(tmp_path), "reconcile")
    assert result.code == 1
    assert "schedule/a.yaml:3:5: jobs.a: unknown key 'comand'" in result.err
    assert list((tmp_path / "state").iterdir()) == []


def test_json_listings(tmp_path: Path, talon: Talon) -> None:
    write_repo(tmp_path, {"schedule/a.yaml": JOB})
    for args in (["status"], ["next", "hello"], ["plan"], ["resources"], ["explain", "hello"]):
        result = talon("-C", str(tmp_path), *args, "--json", "--now", "2026-11-27T00:00:00Z")
        assert result.code == 0, (args, result.err)
        json.loads(result.out)


def test_init_writes_a_valid_repository(tmp_path: Path, talon: Talon) -> None:
    target = tmp_path / "ops"
    assert talon("init", str(target)).code == 0
    assert (target / "talon.yaml").is_file()
    result = talon("-C", str(target), "validate")
    assert result.code == 0, result.out
    again = talon("init", str(target))
    assert again.code == 2, "init never overwrites"


def test_console_script_runs(tmp_path: Path) -> None:
    write_repo(tmp_path, {"schedule/a.yaml": JOB})
    exe = Path(sys.executable).with_name("talon")
    env = {**os.environ, "TALON_REPO": str(tmp_path)}
    out = subprocess.run(
        [str(exe), "validate"], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
