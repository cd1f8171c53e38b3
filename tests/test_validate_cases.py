"""`talon validate` over case folders: each holds a repository and the exact expected lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import Talon

CASES = Path(__file__).parent / "cases" / "validate"
LINE = re.compile(r"^[^:\s]+:\d+:\d+: .+$")


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_case(case: str, talon: Talon) -> None:
    repo = CASES / case
    expected = (repo / "expected.txt").read_text().splitlines()
    before = sorted(p.relative_to(repo) for p in repo.rglob("*"))
    result = talon("-C", str(repo), "validate")
    assert result.lines == expected
    assert result.code == (1 if expected else 0)
    assert all(LINE.match(line) for line in result.lines), result.out
    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == before, "validate wrote files"


def test_twenty_mistakes_each_located_once(talon: Talon) -> None:
    result = talon("-C", str(CASES / "twenty-mistakes"), "validate")
    assert result.code == 1
    assert len(result.lines) >= 20
    assert len(set(result.lines)) == len(result.lines)
    files = {line.split(":", 1)[0] for line in result.lines}
    assert files == {"talon.yaml", "resources/hosts.yaml", "schedule/a.yaml", "schedule/b.yaml"}


def test_json_output_matches_text(talon: Talon) -> None:
    repo = str(CASES / "unknown-refs")
    text = talon("-C", repo, "validate").lines
    result = talon("-C", repo, "validate", "--json")
    data = json.loads(result.out)
    assert result.code == 1
    assert data["ok"] is False
    assert [f"{p['path']}:{p['line']}:{p['col']}: {p['message']}" for p in data["problems"]] == text


def test_clean_repo_json(talon: Talon) -> None:
    result = talon("-C", str(CASES / "clean"), "validate", "--json")
    assert result.code == 0
    assert json.loads(result.out) == {"ok": True, "problems": []}


def test_huge_file_is_one_located_error(tmp_path: Path, talon: Talon) -> None:
    from tests.conftest import write_repo

    repo = write_repo(
        tmp_path, {"schedule/big.yaml": "jobs: {}\n# " + "x" * (50 * 1024 * 1024) + "\n"}
    )
    result = talon("-C", str(repo), "validate")
    assert result.code == 1
    assert len(result.lines) == 1
    assert result.lines[0].startswith("schedule/big.yaml:1:1: file is 50.0 MiB, larger than the")


def test_alias_bomb_is_refused(tmp_path: Path, talon: Talon) -> None:
    from tests.conftest import write_repo

    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[i]
        bomb += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    repo = write_repo(tmp_path, {"resources/bomb.yaml": bomb})
    result = talon("-C", str(repo), "validate")
    assert result.code == 1
    assert "too many nodes" in result.out


def test_missing_talon_yaml(tmp_path: Path, talon: Talon) -> None:
    result = talon("-C", str(tmp_path), "validate")
    assert result.code == 1
    assert result.lines == [f"talon.yaml:0:0: missing: no talon.yaml in {tmp_path.resolve()}"]
