"""Scale: 10,000 jobs and a 10,000-deep `after` chain, through the command line.

Repositories come from `bench/gen_repo.py` (the benchmarks' generator) and every command runs
in a fresh interpreter, as a user's would: recursion limits, the configuration cache's pickle
and memory are those of a real `talon` process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_talon

ROOT = Path(__file__).resolve().parent.parent
GEN = ROOT / "bench" / "gen_repo.py"
DAY = "2026-11-27"
FIRST = f"{DAY}T11:00:00+00:00"  # first pass: windows start, nothing fires
NOOP = f"{DAY}T12:00:00+00:00"  # the next 06:00 is tomorrow
JOBS = 10_000


def gen(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, str(GEN), str(root), *args], check=True, capture_output=True)


def talon(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_talon(root, *args, timeout=600)


def assert_clean(result: subprocess.CompletedProcess[str], code: int = 0) -> None:
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "RecursionError" not in result.stderr + result.stdout


@pytest.mark.slow
def test_ten_thousand_jobs_validate_and_reconcile(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    gen(root, "--jobs", str(JOBS), "--files", "20")
    assert len(list((root / "schedule").glob("*.yaml"))) == 20

    validate = talon(root, "validate")
    assert_clean(validate)
    assert validate.stdout == ""

    first = talon(root, "reconcile", "--now", FIRST)
    assert_clean(first)
    assert first.stdout == ""  # the first pass starts every window; nothing fires
    noop = talon(root, "reconcile", "--now", NOOP)
    assert_clean(noop)
    assert noop.stdout == ""
    # Every job is known and none is due before tomorrow's 06:00.
    nxt = talon(root, "next", "job09999", "--count", "1", "--now", NOOP)
    assert_clean(nxt)
    assert nxt.stdout.strip().startswith("2026-11-28T06:00:00")


@pytest.mark.slow
@pytest.mark.parametrize("form", ["trigger", "constraint"])
def test_ten_thousand_deep_after_chain_validates(tmp_path: Path, form: str) -> None:
    root = tmp_path / "repo"
    gen(root, "--jobs", str(JOBS), "--files", "10", "--chain", form)
    validate = talon(root, "validate")
    assert_clean(validate)
    assert validate.stdout == ""
    if form == "constraint":
        # The configuration cache pickles the spec (written by the first pass, read by the
        # second): a deep chain must survive that too.
        assert_clean(talon(root, "reconcile", "--now", FIRST))
        assert_clean(talon(root, "reconcile", "--now", NOOP))


@pytest.mark.slow
def test_cycle_closing_a_ten_thousand_chain_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    gen(root, "--jobs", str(JOBS), "--files", "10", "--chain", "trigger", "--cycle")
    result = talon(root, "validate")
    assert_clean(result, code=1)
    (line,) = result.stdout.splitlines()
    location, message = line.split(": ", 1)
    assert location == "schedule/bench-000.yaml:2:3"
    assert message.startswith("dependency cycle: job00000 waits for job09999; ")
    assert message.endswith("job00001 is triggered by job00000")
    assert message.count(";") == JOBS - 1


def test_generated_history_is_what_talon_writes(tmp_path: Path) -> None:
    """The benchmarks' history files are byte for byte what `talon.runs.dumps` would write,
    and valid against the run schema: a bench over them measures real run files."""
    import jsonschema

    from talon.runs import Run, dumps

    root = tmp_path / "repo"
    gen(root, "--jobs", "3", "--history-days", "2", "--end", DAY)
    paths = sorted((root / "state").glob("*/*/*.json"))
    assert [p.relative_to(root / "state").as_posix() for p in paths[:2]] == [
        "2026-11-25/job00000/job00000@20261125T060000Z.json",
        "2026-11-25/job00001/job00001@20261125T060000Z.json",
    ]
    assert len(paths) == 6
    schema = json.loads((ROOT / "talon" / "schemas" / "run.schema.json").read_text())
    for path in paths:
        text = path.read_text()
        data = json.loads(text)
        jsonschema.validate(data, schema)
        assert dumps(Run.from_json(data)) == text
        assert data["period"]["key"] == path.parent.parent.name


def test_a_no_op_pass_reads_no_history(tmp_path: Path) -> None:
    """History the pass does not need is never opened: damaged past run files stay unnoticed
    (had a pass read one, it would have moved it aside and said so)."""
    root = tmp_path / "repo"
    gen(root, "--jobs", "20", "--history-days", "30", "--end", DAY)
    # The first pass builds the index by a full scan; its cursors restart at the newest
    # scheduled run, so today's 06:00 is caught up (and settled here).
    assert_clean(talon(root, "reconcile", "--wait", "--now", FIRST))
    history = sorted(
        p for p in (root / "state").glob("2026-*/*/*.json") if p.parent.parent.name != DAY
    )
    assert len(history) == 20 * 30
    assert len(list((root / "state" / DAY).glob("*/*.json"))) == 20
    for path in history:
        path.write_text("{damaged")
    result = talon(root, "reconcile", "--now", NOOP)
    assert_clean(result)
    assert result.stdout == ""
    assert result.stderr == ""
    assert (
        sorted(p for p in (root / "state").glob("2026-*/*/*.json") if p.parent.parent.name != DAY)
        == history
    )
    assert not list((root / "state").glob("2026-*/*/*.corrupt-*"))


@pytest.mark.slow
def test_a_deep_chain_of_after_triggers_runs_to_its_end(tmp_path: Path) -> None:
    """Each link's run id stays as short as the first one's: ids (and the status files named
    after them) must not grow with the depth of the chain."""
    depth = 64
    root = tmp_path / "repo"
    gen(root, "--jobs", str(depth), "--files", "2", "--chain", "trigger")
    assert_clean(talon(root, "reconcile", "--now", f"{DAY}T05:59:00+00:00"))
    result = talon(root, "reconcile", "--wait", "--now", f"{DAY}T06:00:30+00:00")
    assert_clean(result)
    succeeded = [
        line.split()[1] for line in result.stdout.splitlines() if line.startswith("succeed")
    ]
    assert len(succeeded) == depth
    assert max(len(run_id) for run_id in succeeded) <= 2 * len(succeeded[0]) + 16
