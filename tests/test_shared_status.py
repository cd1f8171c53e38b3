"""The status file the local runs of one Talon process share (flock mode), and its pruning.

Each wrapper appends `KEY STATUS` to its process's file instead of creating a `.rc` file of its
own; the file goes once no open run names it and no process will append to it again.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from talon.executors.status_files import owner_of, prune_shared_status, shared_status_name
from tests.conftest import run_talon as cli
from tests.conftest import write_repo


def proc_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "state/.talon/proc").iterdir())


def test_a_wait_shares_one_status_file_and_leaves_none(tmp_path: Path) -> None:
    jobs = "".join(f"  j{i}: {{command: 'exit {i}', trigger: '0 6 * * *'}}\n" for i in range(4))
    root = write_repo(tmp_path, {"schedule/a.yaml": f"jobs:\n{jobs}"})
    assert cli(root, "reconcile", "--now", "2026-11-27T05:00:00Z").returncode == 0
    done = cli(root, "reconcile", "--wait", "--now", "2026-11-27T06:00:30Z")
    assert done.returncode == 1, done.stderr  # j1..j3 fail
    assert sorted(
        ln.split()[0] for ln in done.stdout.splitlines() if ln.split()[0] in ("succeed", "fail")
    ) == ["fail", "fail", "fail", "succeed"], done.stdout
    handles = [
        json.loads(p.read_text())["executor"]["handle"]
        for p in sorted((root / "state/2026-11-27").glob("j*/j*.json"))
    ]
    assert len({h["rc_file"] for h in handles}) == 1, "one file for the process's runs"
    assert all(h["key"] for h in handles)
    assert [
        json.loads(p.read_text())["exit_code"]
        for p in sorted((root / "state/2026-11-27").glob("j*/j*.json"))
    ] == [0, 1, 2, 3]
    assert proc_files(root) == [], "pruned once every outcome was on disk"


def test_the_file_stays_while_a_run_names_it_and_goes_after(tmp_path: Path) -> None:
    """A cron pass starts the run and exits; the wrapper writes the file when the run ends;
    the pass that collects the run (the file's process is gone) prunes it after its sync."""
    root = write_repo(
        tmp_path,
        {"schedule/a.yaml": "jobs:\n  a: {command: 'sleep 0.5', trigger: '0 6 * * *'}\n"},
    )
    assert cli(root, "reconcile", "--now", "2026-11-27T05:00:00Z").returncode == 0
    assert cli(root, "reconcile", "--now", "2026-11-27T06:00:30Z").returncode == 0
    run = json.loads((root / "state/2026-11-27/a/a@20261127T060000Z.json").read_text())
    shared = Path(run["executor"]["handle"]["rc_file"])
    assert shared.parent == root / "state/.talon/proc" and shared.suffix == ".status"
    for _ in range(300):
        if shared.exists():
            break
        time.sleep(0.01)
    key, code, _ended = shared.read_text().split(" ")
    assert (key, code) == (run["executor"]["handle"]["key"], "0")
    # A pass while the run is open (and its outcome not yet collected) keeps the file.
    assert prune_shared_status(shared.parent, {str(shared)}, current=None) == []
    later = cli(root, "reconcile", "--now", "2026-11-27T06:00:40Z")
    assert "succeed  a@20261127T060000Z" in later.stdout, later.stdout
    assert proc_files(root) == []


def test_prune_spares_a_live_process_and_names_not_its_own(tmp_path: Path) -> None:
    status_dir = tmp_path / "proc"
    status_dir.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        with open(f"/proc/{sleeper.pid}/stat") as fh:
            start = fh.read().rsplit(")", 1)[1].split()[19]
        alive = status_dir / f"p{sleeper.pid}-{start}.status"
        dead = status_dir / f"p{sleeper.pid}-{int(start) + 1}.status"  # its pid, not its start
        named = status_dir / "p1-1-3.status"
        foreign = status_dir / "notes.status"
        mine = status_dir / shared_status_name()
        mine_old = status_dir / shared_status_name(generation=2)
        for path in (alive, dead, named, foreign, mine, mine_old):
            path.write_text("k 0\n")
        removed = prune_shared_status(status_dir, {str(named)}, current=mine.name)
        assert sorted(p.name for p in removed) == sorted([dead.name, mine_old.name])
        assert prune_shared_status(status_dir, {str(named)}, current=None) == [mine]
        assert sorted(os.listdir(status_dir)) == sorted([alive.name, named.name, foreign.name])
    finally:
        sleeper.kill()
        sleeper.wait()
    assert owner_of("p12-34-5.status") == ["12", "34"]
    assert owner_of("x.status") is None


def test_a_status_file_made_again_is_read_from_its_start(tmp_path: Path) -> None:
    """A pruned file made again may get the same inode number: what was read of the old one
    must not hide the new one's lines."""
    from talon.executors.status_files import shared_lines

    path = tmp_path / "p1-1.status"
    path.write_text("job.r1.00000000.1 0\n")
    assert shared_lines(path) == {"job.r1.00000000.1": "0"}
    path.unlink()
    path.write_text("job.r2.00000000.2 1\n")
    assert shared_lines(path) == {"job.r2.00000000.2": "1"}
    with path.open("a") as fh:
        fh.write("job.r3.00000000.3 0\n")
    assert shared_lines(path) == {"job.r2.00000000.2": "1", "job.r3.00000000.3": "0"}


def test_the_end_of_a_wait_removes_only_its_own_status_files(tmp_path: Path) -> None:
    """Another process's file may hold the status of a run only a pass can tie to it (it
    restores runs from the log and adopts those without a handle); the checkpoint at the end
    of `reconcile --wait` does neither, so it leaves such files to the passes."""
    root = write_repo(
        tmp_path, {"schedule/a.yaml": "jobs:\n  a: {command: 'true', trigger: '0 6 * * *'}\n"}
    )
    assert cli(root, "reconcile", "--now", "2026-11-27T05:00:00Z").returncode == 0
    proc = root / "state/.talon/proc"
    proc.mkdir(exist_ok=True)
    dead = proc / "p999999-1.status"  # no such process
    dead.write_text("x.y.00000000.1 0\n")
    done = cli(root, "reconcile", "--wait", "--now", "2026-11-27T06:00:30Z")
    assert done.returncode == 0, done.stderr
    assert proc_files(root) == [dead.name]
    plain = cli(root, "reconcile", "--now", "2026-11-28T06:00:30Z")  # a pass, not a no-op
    assert plain.returncode == 0, plain.stderr
    assert dead.name not in proc_files(root), "a pass with every run accounted for removes it"
