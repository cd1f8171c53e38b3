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


# A value of the wrong type is one located problem, at its own place: never a traceback (every
# command loads the configuration), never repeated at the jobs a talon.yaml mistake reaches.
_JOB = 'jobs:\n  j:\n    command: echo hi\n    trigger: "0 6 * * *"'
_RES, _SCHED, _CFG = "resources/h.yaml", "schedule/j.yaml", "talon.yaml"


def _job(extra: str) -> str:
    return f"{_JOB}\n    {extra}"


WRONG_TYPES = [  # (id, file, its text, line:col of the one problem, a fragment of its message)
    ("capacity-two", _RES, "a: {capacity: two}", "1:15", '"two" should be of type integer'),
    ("capacity-null", _RES, "a: {capacity: null}", "1:15", "null should be of type integer"),
    ("capacity-list", _RES, "a: {capacity: []}", "1:15", "[] should be of type integer"),
    ("capacity-negative", _RES, "a: {capacity: -1}", "1:15", "-1 is less than the minimum of 1"),
    ("capacity-zero", _RES, "a: {capacity: 0}", "1:15", "0 is less than the minimum of 1"),
    ("capacity-fraction", _RES, "a: {capacity: 1.5}", "1:15", "1.5 should be of type integer"),
    ("capacity-infinite", _RES, "a: {capacity: 1e400}", "1:15", "should be of type integer"),
    ("capacity-nested", _RES, "a: {b: {capacity: x}}", "1:19", 'a.b.capacity: "x" should be'),
    ("jobs-5", _SCHED, "jobs: 5", "1:7", "jobs: 5 should be of type object"),
    ("file-defaults-5", _SCHED, f"defaults: 5\n{_JOB}", "1:11", "defaults: 5 should be of type"),
    ("executors-5", _CFG, "executors: 5", "1:12", "executors: 5 should be of type object"),
    ("state-5", _CFG, "state: 5", "1:8", "state: 5 should be of type object"),
    ("defaults-5", _CFG, "defaults: 5", "1:11", "defaults: 5 should be of type object"),
    ("plugins-5", _CFG, "plugins: 5", "1:10", "plugins: 5 should be of type object"),
    ("plugins-constraints-5", _CFG, "plugins: {constraints: 5}", "1:24", "constraints: 5 should"),
    ("secrets-5", _CFG, "secrets: 5", "1:10", "secrets: 5 should be of type object"),
    ("timezone-5", _CFG, "timezone: 5", "1:11", "timezone: 5 should be of type string"),
    ("defaults-executor-5", _CFG, "defaults: {executor: 5}", "1:22", "executor: 5 should be"),
    ("defaults-retries-x", _CFG, "defaults: {retries: x}", "1:21", 'retries: "x" should be'),
    ("defaults-params-5", _CFG, "defaults: {params: 5}", "1:20", "params: 5 should be"),
    ("job-retries-x", _SCHED, _job("retries: x"), "5:14", 'retries: "x" should be of type'),
    ("job-timeout-list", _SCHED, _job("timeout: []"), "5:14", "timeout: [] should be of type"),
    ("job-params-5", _SCHED, _job("params: 5"), "5:13", "params: 5 should be of type object"),
    ("job-env-list", _SCHED, _job("env: [A]"), "5:10", 'env: ["A"] should be of type object'),
    ("job-resources-5", _SCHED, _job("resources: 5"), "5:16", "resources: 5 should be of type"),
    ("job-select-5", _SCHED, _job("resources: [{select: 5}]"), "5:26", "select: 5 should be"),
    ("job-secret-list", _SCHED, _job("secrets: [[a]]"), "5:15", 'secrets.0: ["a"] should be'),
    ("job-secrets-text", _SCHED, _job("secrets: db"), "5:14", 'secrets: "db" should be of type'),
    ("job-executor-5", _SCHED, _job("executor: 5"), "5:15", "executor: 5 should be of type"),
    ("job-timezone-5", _SCHED, _job("timezone: 5"), "5:15", "timezone: 5 should be of type"),
    ("job-start-5", _SCHED, _job("start: 5"), "5:12", "start: 5 should be of type string"),
    ("job-after-text", _SCHED, _job("constraints: {after: j}"), "5:26", 'after: "j" should be'),
    # Of the wrong type and not among the allowed values: one line, saying what is allowed.
    ("job-catchup-5", _SCHED, _job("catchup: 5"), "5:14", 'catchup: 5 is not one of "none"'),
    ("job-dst-gap-5", _SCHED, _job("dst: {gap: 5}"), "5:16", 'gap: 5 is not one of "shift"'),
    (
        "job-trigger-after-5",
        _SCHED,
        "jobs:\n  j:\n    command: echo hi\n    trigger: {after: 5}",
        "4:22",
        "after: 5 should be",
    ),
]
_WRONG_TYPE_PARAMS = ("rel", "text", "at", "fragment")


# Each command loads the configuration as validate does; a few cases show they stop cleanly.
_STOPPING = [c for c in WRONG_TYPES if c[0] in {"capacity-two", "jobs-5", "state-5", "timezone-5"}]


_stopping_cases = pytest.mark.parametrize(
    _WRONG_TYPE_PARAMS, [c[1:] for c in _STOPPING], ids=[c[0] for c in _STOPPING]
)


def _wrong_type_repo(root: Path, rel: str, text: str) -> Path:
    from tests.conftest import write_repo

    files = {_SCHED: _JOB, _RES: "a: {capacity: 2}", rel: text}
    return write_repo(root, {path: f"{body}\n" for path, body in files.items()})


@pytest.mark.parametrize(
    _WRONG_TYPE_PARAMS, [c[1:] for c in WRONG_TYPES], ids=[c[0] for c in WRONG_TYPES]
)
def test_wrong_type_is_one_located_problem(
    tmp_path: Path, talon: Talon, rel: str, text: str, at: str, fragment: str
) -> None:
    result = talon("-C", str(_wrong_type_repo(tmp_path, rel, text)), "validate")
    assert result.code == 1
    assert len(result.lines) == 1, result.out
    assert result.lines[0].startswith(f"{rel}:{at}: "), result.out
    assert fragment in result.lines[0]


@_stopping_cases
@pytest.mark.parametrize("command", ["plan", "reconcile"])
def test_wrong_type_stops_other_commands_cleanly(
    tmp_path: Path, talon: Talon, command: str, rel: str, text: str, at: str, fragment: str
) -> None:
    result = talon("-C", str(_wrong_type_repo(tmp_path, rel, text)), command)
    assert result.code == 1
    problem, summary = result.err.splitlines()
    assert problem.startswith(f"{rel}:{at}: ")
    assert fragment in problem
    assert summary == f"talon {command}: the configuration has 1 problem(s); nothing was done"


@_stopping_cases
def test_wrong_type_leaves_status_going_with_a_warning(
    tmp_path: Path, talon: Talon, rel: str, text: str, at: str, fragment: str
) -> None:
    result = talon("-C", str(_wrong_type_repo(tmp_path, rel, text)), "status")
    if result.code == 1:  # talon.yaml itself unusable: nothing to go on with
        assert result.err.splitlines()[-1].endswith("1 problem(s); nothing was done")
    else:
        assert result.code == 0
        assert result.err == (
            "talon: warning: the configuration has 1 problem(s) (`talon validate` lists "
            "them); going on with what could be read\n"
        )


def test_an_unknown_default_timezone_is_reported_where_it_is_written(
    tmp_path: Path, talon: Talon
) -> None:
    # It was reported at every job it reached, none of which says it.
    from tests.conftest import write_repo

    root = write_repo(
        tmp_path,
        {
            _CFG: "timezone: UTC\ndefaults: {timezone: Mars/Olympus}\n",
            _SCHED: "defaults: {timezone: Venus/X}\njobs:\n  a: {command: 'true'}\n",
            "schedule/k.yaml": "jobs:\n  b: {command: 'true'}\n  c: {command: 'true'}\n",
        },
    )
    result = talon("-C", str(root), "validate")
    assert result.code == 1
    assert result.lines == [
        "schedule/j.yaml:1:22: unknown timezone 'Venus/X'",
        "talon.yaml:2:22: unknown timezone 'Mars/Olympus'",
    ]


def test_problems_of_two_values_merged_into_one_place_are_both_said(
    tmp_path: Path, talon: Talon
) -> None:
    from tests.conftest import write_repo

    jobs = "jobs:\n  b:\n    <<: {catchup: 5, timeout: abc}\n    command: 'true'\n"
    result = talon("-C", str(write_repo(tmp_path, {_SCHED: jobs})), "validate")
    assert [line.split(": ", 2)[1] for line in result.lines] == ["jobs.b.catchup", "jobs.b.timeout"]


def test_a_name_ending_in_a_newline_is_refused_everywhere(tmp_path: Path, talon: Talon) -> None:
    # Python's $ let a final newline through the schemas' name patterns; in an exported
    # script it became `export DB` and a line `='s3cret'`, which the shell printed.
    from tests.conftest import write_repo

    root = write_repo(
        tmp_path,
        {
            _CFG: 'timezone: UTC\nsecrets:\n  "db\\n": {env: X}\n',
            _SCHED: 'jobs:\n  j:\n    command: "true"\n    env: {"FOO\\n": x}\n',
        },
    )
    result = talon("-C", str(root), "validate")
    assert result.code == 1
    assert [line.split(": ", 1)[0] for line in result.lines] == [
        "schedule/j.yaml:4:11",
        "talon.yaml:3:3",
    ]
    assert all("\\n' is not allowed" in line for line in result.lines)
