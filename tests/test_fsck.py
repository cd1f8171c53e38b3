"""`talon fsck`: a check writes nothing and reports what it finds whatever the state of the
bookkeeping; `--repair` quarantines and settles, and fires no trigger and starts nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import Talon, write_repo

DAMAGED = '{"id": "b@20261127T063000Z", "job": "b", "state": "runn'
JOBS = "jobs:\n  b:\n    command: 'true'\n    trigger: external\n"


def state_snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under state/ (bookkeeping included): its bytes and modification time."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted((root / "state").rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("book", ["missing", "garbage", "intact"])
def test_fsck_check_reports_a_damaged_run_whatever_the_index(
    tmp_path: Path, talon: Talon, book: str
) -> None:
    """Regression: without state/.talon/ (a fresh clone: init's .gitignore leaves it out) or
    with a garbage index, the check rebuilt the index through the store's read, which moved
    the damaged file aside, and said "state is clean" (exit 0)."""
    root = write_repo(tmp_path, {"schedule/a.yaml": JOBS})
    if book != "missing":
        assert talon("-C", str(root), "reconcile", "--now", "2026-11-27T06:00:00Z").code == 0
    if book == "garbage":
        (root / "state/.talon/index.json").write_text("{garbage")
    path = root / "state/2026-11-27/b/b@20261127T063000Z.json"
    path.parent.mkdir(parents=True)
    path.write_text(DAMAGED)
    before = state_snapshot(root)

    checked = talon("-C", str(root), "fsck")
    assert checked.code == 1, checked.out
    assert checked.lines == [f"{path}: unreadable: JSONDecodeError: {_why()}"]
    as_json = talon("-C", str(root), "fsck", "--json")
    assert as_json.code == 1
    assert json.loads(as_json.out)["findings"] == [
        {"path": str(path), "problem": f"unreadable: JSONDecodeError: {_why()}"}
    ]
    assert state_snapshot(root) == before  # a check moves nothing and writes no index
    assert not (root / "state/.talon").exists() or book != "missing"

    repaired = talon("-C", str(root), "fsck", "--repair")
    assert repaired.code == 0
    (moved,) = path.parent.glob(f"{path.name}.corrupt-*")
    assert repaired.lines[0] == f"{path}: unreadable: JSONDecodeError: {_why()} (moved to {moved})"
    assert moved.read_text() == DAMAGED and not path.exists()
    assert talon("-C", str(root), "fsck").lines == ["state is clean"]


def _why() -> str:
    try:
        json.loads(DAMAGED)
    except json.JSONDecodeError as exc:
        return str(exc)
    raise AssertionError("DAMAGED parses")


def test_fsck_repair_settles_but_fires_and_starts_nothing(tmp_path: Path, talon: Talon) -> None:
    """Regression: `--repair` ran a whole reconcile pass: it fired the due trigger of `c` and
    started the run. It collects `e`'s end and records the run that end sets off (`f`, ready),
    and leaves triggers and dispatches to reconcile."""
    jobs = (
        "jobs:\n"
        "  c:\n    trigger: '*/5 * * * *'\n    command: echo ran > RAN\n"
        "  e:\n    trigger: external\n    command: 'true'\n"
        "  f:\n    trigger: {after: e}\n    command: echo ran > RAN_F\n"
    )
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    assert talon("-C", str(root), "reconcile", "--now", "2026-11-28T07:00:30Z").code == 0
    e_id = talon("-C", str(root), "trigger", "e", "--now", "2026-11-28T07:01:00Z").out.strip()
    assert talon("-C", str(root), "reconcile", "--now", "2026-11-28T07:01:00Z").code == 0
    e_path = root / f"state/2026-11-28/e/{e_id}.json"
    assert json.loads(e_path.read_text())["state"] == "running"

    lines: list[str] = []
    deadline = time.monotonic() + 30
    while json.loads(e_path.read_text())["state"] == "running" and time.monotonic() < deadline:
        repaired = talon("-C", str(root), "fsck", "--repair", "--now", "2026-11-28T07:11:00Z")
        assert repaired.code == 0, repaired.err
        lines += repaired.lines
        time.sleep(0.05)
    assert json.loads(e_path.read_text())["state"] == "succeeded"
    assert not any(" c@" in line or line.startswith("repair: dispatch") for line in lines), lines
    assert any(line.startswith("repair: succeed  e@") for line in lines), lines
    assert not list((root / "state").glob("*/c/*.json"))  # the due trigger is reconcile's
    (f_path,) = (root / "state").glob("*/f/*.json")
    assert json.loads(f_path.read_text())["state"] == "ready"  # recorded, not started
    time.sleep(0.2)
    assert not (root / "RAN").exists() and not (root / "RAN_F").exists()

    fired = talon("-C", str(root), "reconcile", "--now", "2026-11-28T07:11:00Z")
    assert "c@20261128T071000Z" in fired.out and "dispatch f@" in fired.out


def test_fsck_leaves_dot_directories_under_state_alone(tmp_path: Path, talon: Talon) -> None:
    """An editor's `.idea/x.json` under a period was read as a run file of a job `.idea` and
    renamed `.corrupt-…` by --repair."""
    root = write_repo(tmp_path, {"schedule/a.yaml": "jobs: {}\n"})
    foreign = root / "state" / "2026-11-28" / ".idea" / "x.json"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("")
    for args in (("fsck",), ("fsck", "--repair")):
        result = talon("-C", str(root), *args, "--now", "2026-11-28T10:00:00Z")
        assert result.code == 0, result.out + result.err
        assert foreign.read_text() == "" and sorted(foreign.parent.iterdir()) == [foreign]


def test_fsck_reports_a_run_a_dead_pass_fired_and_never_wrote(tmp_path: Path) -> None:
    """A `reconcile --wait` killed after starting a run leaves it in the index log only:
    fsck said "state is clean" while --repair went on to recover it."""
    from tests.conftest import run_talon

    root = write_repo(
        tmp_path, {"schedule/a.yaml": "jobs:\n  b: {command: 'true', trigger: '0 6 * * *'}\n"}
    )
    assert run_talon(root, "reconcile", "--now", "2026-11-28T05:00:00Z").returncode == 0
    crashed = run_talon(
        root,
        "reconcile",
        "--wait",
        "--now",
        "2026-11-28T06:00:30Z",
        crash_at="dispatch.after_submit",
    )
    assert crashed.returncode != 0
    check = run_talon(root, "fsck", "--now", "2026-11-28T06:01:00Z")
    assert check.returncode == 1
    assert "b@20261128T060000Z.json: fired by a pass that died before writing it" in check.stdout
    repair = run_talon(root, "fsck", "--repair", "--now", "2026-11-28T06:01:00Z")
    assert "recover  b@20261128T060000Z" in repair.stdout
    assert run_talon(root, "fsck", "--now", "2026-11-28T06:01:00Z").returncode == 0


def test_fsck_says_which_lock_markers_are_empty(tmp_path: Path, talon: Talon) -> None:
    """lockfile mode: a process killed between creating a marker and writing its holder
    leaves an empty marker, which nothing reclaims; fsck names it as such, and a marker with
    a holder as merely present."""
    config = "timezone: UTC\nstate: {type: files, path: state, lock_mode: lockfile}\n"
    root = write_repo(tmp_path, {"talon.yaml": config, "schedule/a.yaml": "jobs: {}\n"})
    locks = root / "state" / ".talon" / "locks"
    locks.mkdir(parents=True)
    (locks / "@pass.lock").write_text("")
    (locks / "job.lock").write_text("filelock/2 pid=1 host=elsewhere\n")
    result = talon("-C", str(root), "fsck", "--json")
    assert result.code == 0, result.out + result.err
    findings = json.loads(result.out)["findings"]
    problems = {Path(f["path"]).name: f["problem"] for f in findings}
    assert problems["@pass.lock"].startswith("lock marker present and empty")
    assert "remove it" in problems["@pass.lock"]
    assert problems["job.lock"] == "lock marker present (stale if no talon process runs)"
