"""Cases found in review, each once a real bug: kept so they stay fixed."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Talon, write_repo


@pytest.fixture(autouse=True)
def talon_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")


def runs(root: Path) -> dict[str, dict[str, Any]]:
    return {
        p.name[:-5]: json.loads(p.read_text()) for p in sorted((root / "state").glob("*/*/*.json"))
    }


NOW = ("--now", "2026-11-27T10:00:00Z")


def triggered(tmp_path: Path, talon: Talon, name: str, command: str) -> tuple[Path, str]:
    """A repository of one external job, triggered at NOW: its root and the run's id."""
    job = f"jobs:\n  {name}: {{command: {command}, trigger: external}}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": job})
    return root, talon("-C", str(root), "trigger", name, *NOW).out.strip()


def test_retry_ids_of_a_job_whose_name_contains_dot_r(tmp_path: Path, talon: Talon) -> None:
    jobs = """
jobs:
  etl.reports:
    command: test -e "$TALON_REPO/ok" || { touch "$TALON_REPO/ok"; exit 1; }
    trigger: external
    retries: 2
  publish:
    command: 'true'
    trigger: {after: etl.reports}
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    first = talon(
        "-C", str(root), "trigger", "etl.reports", "--now", "2026-11-27T10:00:00Z"
    ).out.strip()
    result = talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T10:00:01Z")
    assert "Traceback" not in result.err
    assert result.code == 0, "its retry succeeded: the --wait did not fail"
    got = runs(root)
    assert got[first]["state"] == "failed"
    assert got[f"{first}.r2"]["state"] == "succeeded"
    dependants = [k for k in got if k.startswith("publish@")]
    assert len(dependants) == 1 and got[dependants[0]]["state"] == "succeeded"


def test_upstream_failed_by_a_constraint_fails_its_dependants(tmp_path: Path, talon: Talon) -> None:
    jobs = """
jobs:
  a: {command: exit 1, trigger: external}
  b: {command: 'true', trigger: external, retries: 2, constraints: {after: [a]}}
  c: {command: 'true', trigger: external, constraints: {after: [b]}}
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    for job in "abc":
        talon("-C", str(root), "trigger", job, "--now", "2026-11-27T10:00:00Z")
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T10:00:01Z")
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T10:05:00Z")
    states = {r["job"]: (r["state"], r["reason"]) for r in runs(root).values()}
    assert states["b"][0] == "failed" and states["b"][1].startswith("upstream a failed")
    assert states["c"][0] == "failed" and states["c"][1].startswith("upstream b failed")


def test_after_trigger_does_not_apply_the_offset_twice(tmp_path: Path, talon: Talon) -> None:
    jobs = """
jobs:
  a: {command: 'true', trigger: '0 6 * * *', period: {type: daily, offset: -1}}
  b: {command: 'true', trigger: {after: a}, period: {type: daily, offset: -1}, constraints: {after: [a]}}
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T00:00:00Z")
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T06:00:10Z")
    got = runs(root)
    assert {r["job"]: (r["period"]["key"], r["state"]) for r in got.values()} == {
        "a": ("2026-11-26", "succeeded"),
        "b": ("2026-11-26", "succeeded"),
    }


def test_progress_in_lockfile_mode_does_not_wedge_the_job(tmp_path: Path, talon: Talon) -> None:
    config = "timezone: UTC\nstate: {type: files, path: state, lock_mode: lockfile}\n"
    jobs = "jobs:\n  j:\n    command: talon progress --percent 50\n    trigger: external\n"
    root = write_repo(tmp_path, {"talon.yaml": config, "schedule/a.yaml": jobs})
    for n in range(2):
        talon("-C", str(root), "trigger", "j", "--now", f"2026-11-27T10:0{n}:00Z")
        result = talon("-C", str(root), "reconcile", "--wait", "--now", f"2026-11-27T10:0{n}:01Z")
        assert result.code == 0, result.err
    assert [r["progress"] for r in runs(root).values()] == [
        {"kind": "percent", "percent": 50.0}
    ] * 2


def test_external_trigger_in_the_same_second_as_a_cron_fire(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n  a:\n    command: 'true'\n    trigger: '30 6 * * *'\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T00:00:00Z")
    ext = talon("-C", str(root), "trigger", "a", "--now", "2026-11-27T06:30:00Z").out.strip()
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T06:31:00Z")
    assert sorted(runs(root)) == sorted(["a@20261127T063000Z", ext])


def test_a_lost_index_keeps_catch_up(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n  a:\n    command: 'true'\n    trigger: '0 6 * * *'\n    catchup: all\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-11-25T00:00:00Z")
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-25T06:01:00Z")
    (root / "state/.talon/index.json").unlink()
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T12:00:00Z")
    assert sorted(runs(root)) == [
        "a@20261125T060000Z",
        "a@20261126T060000Z",
        "a@20261127T060000Z",
    ]


def test_start_by_duration_is_elapsed_time_across_fall_back(tmp_path: Path, talon: Talon) -> None:
    jobs = """
jobs:
  j:
    command: 'true'
    timezone: Europe/London
    trigger: '10 1 * * *'
    dst: {fold: last}
    constraints: {start_by: 30m, after: [never]}
  never: {command: 'true', trigger: external}
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-10-24T12:00:00Z")
    # 01:10 GMT (the second 01:10) is 01:10Z; 30 minutes later is 01:40Z, not 00:40Z.
    talon("-C", str(root), "reconcile", "--now", "2026-10-25T01:11:00Z")
    (run,) = (r for r in runs(root).values() if r["job"] == "j")
    assert run["state"] == "blocked", run["reason"]
    talon("-C", str(root), "reconcile", "--now", "2026-10-25T01:41:00Z")
    (run,) = (r for r in runs(root).values() if r["job"] == "j")
    assert run["state"] == "failed" and run["reason"].startswith("start_by 30m passed")


def test_latest_keeps_every_on_time_fire(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n  m:\n    command: 'true'\n    trigger: '* * * * *'\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T06:00:00Z")
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T06:02:30Z")
    # (06:00 fires at the first pass: the window of a job first seen then includes it.)
    assert sorted(runs(root)) == [
        "m@20261127T060000Z",
        "m@20261127T060100Z",
        "m@20261127T060200Z",
    ]


def test_runs_fired_by_a_pass_that_died_mid_dispatch_are_not_lost(tmp_path: Path) -> None:
    """A pass keeps runs born ready in memory until it dispatches them; killed first, the
    next pass writes them from the journal even when their fire is no longer on time."""
    import signal
    import subprocess

    jobs = "jobs:\n" + "".join(
        f"  {n}:\n    command: 'true'\n    trigger: '0 6 * * *'\n    catchup: none\n" for n in "ab"
    )
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALON_")}

    def talon_cli(*args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
        extra = {"TALON_CRASH_AT": crash} if crash else {}
        return subprocess.run(
            [sys.executable, "-m", "talon", "-C", str(root), *args],
            capture_output=True,
            text=True,
            env=env | extra,
            check=False,
        )

    talon_cli("reconcile", "--now", "2026-11-27T05:00:00Z")
    died = talon_cli("reconcile", "--now", "2026-11-27T06:00:05Z", crash="dispatch.after_intent")
    assert died.returncode == -signal.SIGKILL
    later = talon_cli("reconcile", "--wait", "--now", "2026-11-27T06:10:00Z")
    assert later.returncode == 0, later.stderr
    assert "missed" not in later.stdout
    got = runs(root)
    assert sorted(got) == ["a@20261127T060000Z", "b@20261127T060000Z"]
    assert all(r["state"] == "succeeded" for r in got.values())


def test_a_long_lived_process_follows_a_recreated_lock_file(tmp_path: Path) -> None:
    """Someone clears state/.talon while a watcher lives: its next lock must be on the new file
    the other processes use, or two passes could overlap."""
    import shutil
    import subprocess

    from talon.store import FileStore

    store = FileStore(tmp_path / "state")
    store.ensure()
    with store.locked("@pass"):
        pass
    shutil.rmtree(tmp_path / "state" / ".talon")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from talon.store import FileStore; "
            f"s = FileStore(Path({str(tmp_path / 'state')!r})); s.ensure(); "
            "cm = s.locked('@pass'); cm.__enter__(); print('held', flush=True); time.sleep(5)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError), store.locked("@pass", timeout=0.5):
            pass
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_removed_job_does_not_keep_the_shortcut_off(tmp_path: Path, talon: Talon) -> None:
    from datetime import datetime

    from talon.quiet import is_quiet

    jobs = "jobs:\n  keep:\n    command: 'true'\n    trigger: '0 6 * * *'\n  gone:\n    command: 'true'\n    trigger: '0 7 * * *'\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T05:00:00Z")
    (root / "schedule/a.yaml").write_text(
        "jobs:\n  keep:\n    command: 'true'\n    trigger: '0 6 * * *'\n"
    )
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T06:30:00Z")
    assert is_quiet(root, datetime.fromisoformat("2026-11-27T07:30:00+00:00").timestamp())


def test_a_trigger_at_the_instant_a_job_is_first_seen_fires(tmp_path: Path, talon: Talon) -> None:
    # SPEC: the first time a job is seen, its trigger window starts then. The window was
    # (start, now], so a pass at exactly 06:00 skipped the 06:00 trigger for good.
    jobs = "jobs:\n  daily: {command: 'true', trigger: '0 6 * * *', timezone: UTC}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T06:00:00Z")
    assert list(runs(root)) == ["daily@20261127T060000Z"]


def test_a_trigger_at_the_start_of_the_window_is_caught_up(tmp_path: Path, talon: Talon) -> None:
    jobs = """
jobs:
  daily:
    command: 'true'
    trigger: '0 6 * * *'
    timezone: UTC
    start: '2026-11-25T06:00:00Z'
    catchup: all
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T07:00:00Z")
    assert sorted(runs(root)) == [
        "daily@20261125T060000Z",
        "daily@20261126T060000Z",
        "daily@20261127T060000Z",
    ]


def test_c_finds_a_run_file_given_relative_to_dir(
    tmp_path: Path, talon: Talon, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `-C DIR` runs as if started in DIR: a relative run file path is DIR's, not the cwd's.
    jobs = "jobs:\n  f: {command: 'echo hello', trigger: external}\n"
    write_repo(tmp_path / "repo", {"schedule/a.yaml": jobs})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_id = talon("-C", "../repo", "trigger", "f", "--now", "2026-11-27T10:00:00Z").out.strip()
    rel = f"state/2026-11-27/f/{run_id}.json"
    for args in (("show", rel), ("explain", rel)):
        result = talon("-C", "../repo", *args)
        assert result.code == 0, (args, result.err)
        assert run_id in result.out, args
    talon("-C", "../repo", "reconcile", "--wait", "--now", "2026-11-27T10:00:10Z")
    assert talon("-C", "../repo", "log", rel).out == "hello\n"
    retried = talon("-C", "../repo", "retry", rel, "--now", "2026-11-27T10:00:20Z")
    assert retried.code == 0, retried.err
    cancelled = talon("-C", "../repo", "cancel", rel)  # (finished: nothing to cancel)
    assert "no run" not in cancelled.err and run_id in cancelled.out + cancelled.err


def test_status_reports_the_run_file_it_moves_aside(tmp_path: Path, talon: Talon) -> None:
    # SPEC: a file Talon cannot parse is reported with its path and moved aside; status
    # moved it aside without a word.
    jobs = "jobs:\n  hello: {command: 'true', trigger: '0 6 * * *', timezone: UTC}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    damaged = root / "state" / "2026-11-26" / "hello" / "hello@20261126T060000Z.json"
    damaged.parent.mkdir(parents=True)
    damaged.write_text('{"id": "hello@2026')
    result = talon("-C", str(root), "status", "--now", "2026-11-26T07:00:00Z")
    assert result.code == 1
    assert str(damaged) in result.err and "unreadable run file" in result.err
    assert not damaged.exists()
    assert [p.name.split(".corrupt-")[0] for p in damaged.parent.iterdir()] == [damaged.name]


def test_status_json_names_the_duration_as_the_spec_does(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n  f: {command: 'true', trigger: external}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "trigger", "f", "--now", "2026-11-27T10:00:00Z")
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T10:00:00Z")
    rows = json.loads(
        talon("-C", str(root), "status", "--json", "--now", "2026-11-27T10:01:00Z").out
    )
    assert len(rows) == 1 and isinstance(rows[0]["duration"], float)


def test_external_triggers_for_two_periods_at_one_instant_get_two_ids(
    tmp_path: Path, talon: Talon
) -> None:
    # Both were stamped d@<now>.ext, in two period directories: `show ID` picked one, and
    # the pass (which keys runs by id) ran one and left the other blocked for good.
    jobs = "jobs:\n  d: {command: 'true', trigger: external}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    now = "2026-11-27T10:00:00Z"
    old = talon("-C", str(root), "trigger", "d", "--period", "2026-11-21", "--now", now).out
    new = talon("-C", str(root), "trigger", "d", "--now", now).out
    assert old.strip() != new.strip()
    result = talon("-C", str(root), "reconcile", "--wait", "--now", now)
    assert result.code == 0, result.err
    got = runs(root)
    assert sorted(got) == sorted([old.strip(), new.strip()])
    assert {r["state"] for r in got.values()} == {"succeeded"}
    assert {r["period"]["key"] for r in got.values()} == {"2026-11-21", "2026-11-27"}


def test_explain_names_triggers_as_the_schedule_does(tmp_path: Path, talon: Talon) -> None:
    jobs = """
jobs:
  a: {command: 'true', trigger: external}
  b: {command: 'true', trigger: [{after: a}, '0 6 * * *']}
  c: {command: 'true', trigger: "every 15 minutes between 7-10am, hourly until 4pm on weekdays"}
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    result = talon("-C", str(root), "explain", "a", "--now", "2026-11-27T10:00:00Z")
    assert "no timed trigger (external)" in result.out
    got = json.loads(talon("-C", str(root), "explain", "b", "--json").out)
    assert got["triggers"] == ["after: a", "cron: 0 6 * * *"]
    got = json.loads(talon("-C", str(root), "explain", "c", "--json").out)
    assert got["triggers"] == [
        "window: every 15m from 07:00 to 10:00, every 1h from 10:00 to 16:00 on mon,tue,wed,thu,fri"
    ]


def test_status_refuses_a_malformed_period_key(tmp_path: Path, talon: Talon) -> None:
    root = write_repo(tmp_path, {"schedule/a.yaml": "jobs:\n  f: {command: 'true'}\n"})
    result = talon("-C", str(root), "status", "--period", "foo")
    assert result.code == 2 and "--period" in result.err and "'foo'" in result.err
    assert talon("-C", str(root), "status", "--period", "2026-W48").code == 0


def test_validate_reports_a_plugin_that_cannot_be_imported(tmp_path: Path, talon: Talon) -> None:
    # It validated, and the first pass left every run of the job blocked on the error.
    config = """timezone: UTC
plugins:
  constraints:
    ok_day: talon_test_ok_day:check
    gone: talon_test_no_such_module:check
"""
    jobs = "jobs:\n  f: {command: 'true', trigger: external, constraints: {ok_day: 1, gone: 1}}\n"
    root = write_repo(
        tmp_path,
        {
            "talon.yaml": config,
            "schedule/a.yaml": jobs,
            "lib/talon_test_ok_day.py": "def check(run, options, view, now):\n"
            "    return 'pass', ''\n",
        },
    )
    result = talon("-C", str(root), "validate")
    assert result.code == 1
    assert result.lines == [
        "talon.yaml:5:11: plugin constraint 'gone' (talon_test_no_such_module:check) cannot be"
        " loaded: No module named 'talon_test_no_such_module'"
    ]


def test_validate_reports_placeholders_every_run_would_fail_on(
    tmp_path: Path, talon: Talon
) -> None:
    # Each scheduled run failed at dispatch with "unknown placeholder"; validate said nothing.
    jobs = """jobs:
  cron:
    command: echo ${params.nope} ${params.region} ${resources.1.address}
    trigger: '0 6 * * *'
    params: {region: eu}
    resources: [{select: 'hosts/*'}]
    env: {X: '${period.day}'}
  by-hand:
    command: echo ${params.anything}
    trigger: external
"""
    root = write_repo(
        tmp_path,
        {"schedule/a.yaml": jobs, "resources/hosts.yaml": "a: {address: h1}\nb: {address: h2}\n"},
    )
    result = talon("-C", str(root), "validate")
    assert result.code == 1
    assert [line.split(": ", 1)[0] for line in result.lines] == [
        "schedule/a.yaml:3:14",
        "schedule/a.yaml:3:14",
        "schedule/a.yaml:7:14",
    ]
    assert "unknown placeholder ${params.nope}: the job's params are region" in result.lines[0]
    assert "${resources.1.address}: the job is granted 1 resource(s)" in result.lines[1]
    assert "unknown placeholder ${period.day}; known:" in result.lines[2]


@pytest.mark.parametrize(
    ("start", "cron", "now", "expected"),
    [
        # Spring forward: a second before 03:00 EDT is 02:59:59, which does not exist there.
        ("2026-03-08T03:00:00", "30 3 * * *", "2026-03-08T08:00:00Z", ["20260308T073000Z"]),
        # Fall back: a second before 02:00 EST, read locally, is an hour earlier in real time.
        (
            "2026-11-01T02:00:00",
            "*/15 * * * *",
            "2026-11-01T07:50:00Z",
            ["20261101T070000Z", "20261101T071500Z", "20261101T073000Z", "20261101T074500Z"],
        ),
    ],
)
def test_the_window_starts_at_start_across_dst(
    tmp_path: Path, talon: Talon, start: str, cron: str, now: str, expected: list[str]
) -> None:
    jobs = f"""
jobs:
  j:
    command: 'true'
    trigger: '{cron}'
    timezone: America/New_York
    start: '{start}'
    catchup: all
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    result = talon("-C", str(root), "reconcile", "--now", now)
    assert result.code == 0, result.err
    assert sorted(k.split("@")[1] for k in runs(root)) == expected


def test_a_start_ahead_is_not_taken_for_a_clock_gone_back(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n  j: {command: 'true', trigger: '0 6 * * *', start: '2026-12-01T00:00:00Z'}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    for now in ("2026-11-27T10:00:00Z", "2026-11-27T10:01:00Z"):
        result = talon("-C", str(root), "reconcile", "--now", now)
        assert result.code == 0 and "earlier than the last pass" not in result.err, result.err
    assert runs(root) == {}


def test_explain_says_how_a_lost_run_was_lost(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n  f: {command: 'sleep 60', trigger: external}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    run_id = talon("-C", str(root), "trigger", "f", "--now", "2026-11-27T10:00:00Z").out.strip()
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T10:00:00Z")
    handle = runs(root)[run_id]["executor"]["handle"]
    os.killpg(handle["pid"], 9)  # the wrapper leads the run's process group
    for _ in range(100):  # until the kernel has it gone (a zombie counts as gone)
        try:
            state = Path(f"/proc/{handle['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.02)
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T10:01:00Z")
    assert runs(root)[run_id]["reason"] == "lost"
    out = talon("-C", str(root), "explain", run_id).out
    assert "  because: lost\n" in out
    assert f"  detail: lost: process {handle['pid']} vanished" in out


def test_item_states_are_the_jobs_words(tmp_path: Path, talon: Talon) -> None:
    # `--item a=done` was refused: only run states were taken, though the SPEC leaves an
    # item's state to the job. Finished-sounding words count as done.
    jobs = "jobs:\n  f: {command: 'true', trigger: external}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    run_id = talon("-C", str(root), "trigger", "f", "--now", "2026-11-27T10:00:00Z").out.strip()
    args = ("-C", str(root), "progress", "--run", run_id, "--total", "4")
    result = talon(*args, "--item", "a=done", "--item", "b=error", "--item", "c=copying")
    assert result.code == 0, result.err
    progress = runs(root)[run_id]["progress"]
    assert progress["items"] == {"a": "done", "b": "error", "c": "copying"}
    assert (progress["done"], progress["total"]) == (2, 4)
    bad = talon(*args, "--item", "d=not a word")
    assert bad.code == 2 and "--item 'd=not a word'" in bad.err


def test_a_param_inside_double_quotes_is_not_run(tmp_path: Path, talon: Talon) -> None:
    # shlex.quote made a value one word only where the placeholder stood unquoted: inside
    # double quotes a $(...) in a parameter ran.
    jobs = (
        """jobs:\n  f: {command: 'echo "P=${params.x}"; echo ${params.x}', trigger: external}\n"""
    )
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    hostile = "$(touch PWNED1) `touch PWNED2` a  b"
    run_id = talon(
        "-C", str(root), "trigger", "f", "--param", f"x={hostile}", "--now", "2026-11-27T10:00:00Z"
    ).out.strip()
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T10:00:00Z")
    assert runs(root)[run_id]["state"] == "succeeded"
    assert talon("-C", str(root), "log", run_id).out == f"P={hostile}\n{hostile}\n"
    assert not list(root.rglob("PWNED*"))


def test_a_run_path_outside_the_state_directory_is_refused(tmp_path: Path, talon: Talon) -> None:
    # `cancel /elsewhere/evil.json` rewrote that file; show and log read it and its neighbour.
    root = write_repo(tmp_path / "repo", {"schedule/a.yaml": "jobs:\n  f: {command: 'true'}\n"})
    outside = tmp_path / "elsewhere" / "evil.json"
    outside.parent.mkdir()
    outside.write_text('{"id": "f@20261127T000000Z", "state": "running"}')
    for command in ("cancel", "show", "log", "retry"):
        result = talon("-C", str(root), command, str(outside))
        assert result.code != 0 and "not a run file of" in result.err, (command, result)
    assert outside.read_text() == '{"id": "f@20261127T000000Z", "state": "running"}'


def test_a_job_name_ending_in_a_newline_is_refused(tmp_path: Path, talon: Talon) -> None:
    root = write_repo(tmp_path, {"schedule/a.yaml": 'jobs:\n  "trail\\n": {command: "true"}\n'})
    result = talon("-C", str(root), "validate")
    assert result.code == 1
    assert len(result.lines) == 1
    assert result.lines[0].startswith("schedule/a.yaml:2:3: jobs: name 'trail\\n' is not allowed")


def test_a_secret_file_that_is_not_text_fails_the_run_not_the_pass(
    tmp_path: Path, talon: Talon, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = "timezone: UTC\nsecrets:\n  tok: {file: tok.secret}\n"
    jobs = "jobs:\n  s: {command: 'true', trigger: external, secrets: [tok]}\n"
    jobs += "  t: {command: 'true', trigger: external}\n"
    root = write_repo(tmp_path, {"talon.yaml": config, "schedule/a.yaml": jobs})
    (root / "tok.secret").write_bytes(b"SECRETPART\xff\xfe")
    monkeypatch.chdir(root)  # (the secret's path is relative to where Talon runs)
    s_id = talon("-C", str(root), "trigger", "s", "--now", "2026-11-27T10:00:00Z").out.strip()
    t_id = talon("-C", str(root), "trigger", "t", "--now", "2026-11-27T10:00:00Z").out.strip()
    result = talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T10:00:00Z")
    assert "Traceback" not in result.err
    got = runs(root)
    assert got[s_id]["state"] == "failed" and "not UTF-8" in got[s_id]["reason"]
    assert "SECRETPART" not in json.dumps(got[s_id]) + result.out + result.err
    assert got[t_id]["state"] == "succeeded"


def test_a_cluster_job_script_is_never_a_file_in_the_repository(tmp_path: Path) -> None:
    # It exports the run's environment, secrets included: it was state/.talon/proc/sge-<run>/job.sh
    # (0755 at first, then 0700), and stayed there after the run. qsub and sbatch now read it on
    # stdin; a job.sh left by an earlier version goes when the run is submitted again.
    from talon.executors.base import Submission
    from talon.executors.remote import job_script

    sub = Submission(
        run_id="j@20261127T000000Z",
        job="j",
        command="true",
        env={"DB": "s3cret"},
        log_path=tmp_path / "state" / "p" / "j" / "j@20261127T000000Z.log",
        status_dir=tmp_path / "state" / ".talon" / "proc",
    )
    state_dir = tmp_path / "state" / ".talon" / "proc" / "sge-j"
    state_dir.mkdir(parents=True)
    (state_dir / "job.sh").write_text("export DB=s3cret\n")
    script = job_script(sub, state_dir, workdir=str(tmp_path), kill_grace_s=1, job_id_var="JOB_ID")
    assert "s3cret" in script  # (it must carry the value: the job needs it)
    left = [p for p in tmp_path.rglob("*") if p.is_file() and b"s3cret" in p.read_bytes()]
    assert left == []


def test_nothing_talon_creates_is_world_writable_under_umask_000(tmp_path: Path) -> None:
    import stat
    import subprocess

    repo = tmp_path / "repo"
    jobs = "jobs:\n  f: {command: 'echo hi', trigger: external}\n"
    script = f"""umask 000
{sys.executable} -m talon init {repo} >/dev/null
printf %s "{jobs}" > {repo}/schedule/example.yaml
{sys.executable} -m talon -C {repo} trigger f --now 2026-11-27T10:00:00Z >/dev/null
{sys.executable} -m talon -C {repo} reconcile --wait --now 2026-11-27T10:00:00Z >/dev/null
{sys.executable} -m talon -C {repo} reconcile --now 2026-11-27T10:01:00Z >/dev/null
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALON_")}
    subprocess.run(["/bin/sh", "-c", script], check=True, env=env)
    made = [repo, *repo.rglob("*")]
    assert len([p for p in made if p.suffix == ".json" and "state" in p.parts]) >= 1
    writable = [p for p in made if stat.S_IMODE(p.lstat().st_mode) & 0o002]
    assert writable == []


def test_a_directory_named_like_a_run_file_is_left_alone(tmp_path: Path, talon: Talon) -> None:
    # status (read-only) renamed it .corrupt-... and exited 1.
    jobs = "jobs:\n  hello: {command: 'true', trigger: '0 6 * * *', timezone: UTC}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    odd = root / "state" / "2026-11-27" / "hello" / "hello@20261127T050000Z.json"
    odd.mkdir(parents=True)
    for args in (
        ("status", "--now", "2026-11-27T05:30:00Z"),
        ("reconcile", "--now", "2026-11-27T05:30:00Z"),
        ("fsck",),
    ):
        result = talon("-C", str(root), *args)
        assert result.code == 0, (args, result.err)
    assert odd.is_dir() and [p.name for p in odd.parent.iterdir()] == [odd.name]


def test_init_into_a_git_checkout_and_onto_a_file(tmp_path: Path, talon: Talon) -> None:
    # A checkout's own .gitignore made init refuse; a file in the way gave a traceback.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".gitignore").write_text("*.pyc")
    assert talon("init", str(checkout)).code == 0
    assert (checkout / ".gitignore").read_text() == "*.pyc\nstate/.talon/\n"
    assert talon("-C", str(checkout), "validate").code == 0
    assert talon("init", str(checkout)).code == 2  # (its talon.yaml is there now)
    (tmp_path / "a-file").write_text("")
    result = talon("init", str(tmp_path / "a-file"))
    assert result.code == 2 and "exists and is not a directory" in result.err


def test_an_artifact_is_a_url(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n  f: {command: 'true', trigger: external}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    run_id = talon("-C", str(root), "trigger", "f", "--now", "2026-11-27T10:00:00Z").out.strip()
    bad = talon("-C", str(root), "artifact", "add", "not a url at all", "--run", run_id)
    assert bad.code == 2 and "is not a URL" in bad.err
    for url in ("https://example.test/r.pdf", "s3://bucket/key", "file:///data/my report.csv"):
        assert talon("-C", str(root), "artifact", "add", url, "--run", run_id).code == 0
    assert [a["url"] for a in runs(root)[run_id]["artifacts"]] == [
        "https://example.test/r.pdf",
        "s3://bucket/key",
        "file:///data/my report.csv",
    ]


def test_small_messages_say_what_was_asked(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n  f: {command: 'true', trigger: external}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    plan = talon("-C", str(root), "plan", "--until", "garbage")
    assert plan.code == 2 and plan.err.startswith("talon plan: --until: 'garbage'")
    assert talon("-C", str(root), "status", "--period", "once").out == "no runs in period once\n"
    run_id = talon("-C", str(root), "trigger", "f", "--now", "2026-11-27T10:00:00Z").out.strip()
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T10:00:00Z")
    cancel = talon("-C", str(root), "cancel", run_id, "--json")
    assert cancel.code == 1 and f"{run_id} is succeeded already" in cancel.err
    assert json.loads(cancel.out) == {"run": run_id, "state": "succeeded", "was": "succeeded"}


def test_plan_does_not_wait_a_day_for_a_run_of_unknown_length(tmp_path: Path, talon: Talon) -> None:
    # Without an expected duration, the upstream was shown succeeding at the next trigger,
    # a day later, and its dependant with it.
    jobs = """jobs:
  up: {command: 'true', trigger: '0 6 * * *'}
  down: {command: 'true', trigger: '0 6 * * *', constraints: {after: [up]}}
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    out = talon(
        "-C", str(root), "plan", "--now", "2026-03-09T05:00Z", "--until", "2026-03-09T12:00Z"
    ).lines
    assert "2026-03-09T06:00:00+00:00  ready    down@20260309T060000Z: nothing holds it back" in out
    assert all(line.startswith("2026-03-09T06:00:00+00:00") for line in out)


def test_control_characters_in_an_argument_are_not_sent_to_the_terminal(
    tmp_path: Path, talon: Talon
) -> None:
    root = write_repo(tmp_path, {"schedule/a.yaml": "jobs:\n  f: {command: 'true'}\n"})
    result = talon("-C", str(root), "trigger", "a\x1b[31mred\x00")
    assert result.code == 2
    assert "\x1b" not in result.err and "\x00" not in result.err
    assert "no job 'a\\x1b[31mred\\x00'" in result.err


def test_once_per_period_runs_one_at_a_time(tmp_path: Path, talon: Talon) -> None:
    # Two runs triggered together both ran and both succeeded: "a second successful run in a
    # period is skipped".
    jobs = (
        "jobs:\n  o: {command: 'true', trigger: external, constraints: {once_per_period: true}}\n"
    )
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    first = talon("-C", str(root), "trigger", "o", "--now", "2026-11-27T10:00:00Z").out.strip()
    second = talon("-C", str(root), "trigger", "o", "--now", "2026-11-27T10:00:00Z").out.strip()
    talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T10:00:00Z")
    got = runs(root)
    assert got[first]["state"] == "succeeded"
    assert got[second]["state"] == "skipped"
    assert got[second]["reason"].startswith("already succeeded in 2026-11-27")


@pytest.mark.parametrize(
    ("start_by", "trigger_at", "now", "state"),
    [
        # On the trigger's day, even before the trigger: late already.
        ("09:00", "2026-11-27T15:00:00Z", "2026-11-27T15:00:00Z", "failed"),  # 10:00 EST
        # A clock time the day skips is the first instant after the gap: 03:00 EDT.
        ("02:30", "2026-03-08T06:00:00Z", "2026-03-08T07:15:00Z", "failed"),
        ("02:30", "2026-03-08T06:00:00Z", "2026-03-08T06:59:00Z", "blocked"),
    ],
)
def test_start_by_is_a_clock_time_on_the_triggers_day(
    tmp_path: Path, talon: Talon, start_by: str, trigger_at: str, now: str, state: str
) -> None:
    jobs = f"""jobs:
  u: {{command: 'true', trigger: external}}
  j:
    command: 'true'
    trigger: external
    timezone: America/New_York
    constraints: {{start_by: '{start_by}', after: [u]}}
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    run_id = talon("-C", str(root), "trigger", "j", "--now", trigger_at).out.strip()
    talon("-C", str(root), "reconcile", "--now", now)
    assert runs(root)[run_id]["state"] == state


def test_next_and_explain_wait_for_a_start_ahead(tmp_path: Path, talon: Talon) -> None:
    # They listed fires from now, which reconcile (rightly) does not fire before `start:`.
    jobs = "jobs:\n  j: {command: 'true', trigger: '0 6 * * *', start: '2027-01-05T06:00:00Z'}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    got = talon("-C", str(root), "next", "j", "--count", "2", "--now", "2026-11-27T00:00:00Z")
    assert got.lines == ["2027-01-05T06:00:00+00:00", "2027-01-06T06:00:00+00:00"]
    explained = talon("-C", str(root), "explain", "j", "--json", "--now", "2026-11-27T00:00:00Z")
    assert json.loads(explained.out)["next_trigger"] == "2027-01-05T06:00:00+00:00"


@pytest.mark.parametrize(
    ("catchup", "created", "missed"),
    [("latest", 1, 168), ("none", 0, 169), ("all", 100, 69)],
)
def test_missed_says_how_many_were_missed(
    tmp_path: Path, talon: Talon, catchup: str, created: int, missed: int
) -> None:
    # It counted only the fires it had looked at: 99 of 168, and none beyond max_catchup.
    jobs = f"jobs:\n  h: {{command: 'true', trigger: '0 * * * *', catchup: {catchup}}}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-11-20T00:30:00Z")  # first seen
    out = talon("-C", str(root), "reconcile", "--now", "2026-11-27T01:30:00Z").out
    assert f"missed   h: {missed} missed trigger(s) not run (catchup: {catchup})" in out
    assert len(runs(root)) == created


def test_a_deadline_at_now_has_not_passed(tmp_path: Path, talon: Talon) -> None:
    # reconcile --now T ran its pass a few milliseconds after T, where plan ran it at T.
    jobs = """jobs:
  u: {command: 'true', trigger: external}
  j: {command: 'true', trigger: external, constraints: {start_by: '09:00', after: [u]}}
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    run_id = talon("-C", str(root), "trigger", "j", "--now", "2026-11-27T08:00:00Z").out.strip()
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T09:00:00Z")
    assert runs(root)[run_id]["state"] == "blocked"
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T09:00:01Z")
    assert runs(root)[run_id]["state"] == "failed"


def test_a_skip_by_once_per_period_does_not_cancel_dependants(tmp_path: Path, talon: Talon) -> None:
    jobs = """jobs:
  j: {command: 'true', trigger: external, constraints: {once_per_period: true}}
  d: {command: 'true', trigger: external, constraints: {after: [j]}}
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    now = "2026-11-27T10:00:00Z"
    for job in ("j", "j", "d"):
        talon("-C", str(root), "trigger", job, "--now", now)
    talon("-C", str(root), "reconcile", "--wait", "--now", now)
    states = sorted((r["job"], r["state"]) for r in runs(root).values())
    assert states == [("d", "succeeded"), ("j", "skipped"), ("j", "succeeded")]


def test_start_by_does_not_fail_a_backfill(tmp_path: Path, talon: Talon) -> None:
    jobs = "jobs:\n  b: {command: 'true', trigger: '0 6 * * *', constraints: {start_by: '09:00'}}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    now = "2026-11-27T10:00:00Z"
    talon(
        "-C", str(root), "backfill", "b", "--from", "2026-11-20", "--to", "2026-11-21", "--now", now
    )
    talon("-C", str(root), "reconcile", "--wait", "--now", now)
    backfilled = [r for r in runs(root).values() if r["trigger"]["type"] == "backfill"]
    assert [r["state"] for r in backfilled] == ["succeeded", "succeeded"]


def test_a_start_given_to_a_job_already_seen_holds_it(tmp_path: Path, talon: Talon) -> None:
    job = "jobs:\n  j: {command: 'true', trigger: '0 6 * * *'%s}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": job % ""})
    talon("-C", str(root), "reconcile", "--now", "2026-11-26T12:00:00Z")
    (root / "schedule" / "a.yaml").write_text(job % ", start: '2026-12-05T00:00:00Z'")
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T07:00:00Z")
    assert runs(root) == {}
    talon("-C", str(root), "reconcile", "--now", "2026-12-05T06:30:00Z")
    assert list(runs(root)) == ["j@20261205T060000Z"]


def test_a_run_failing_to_start_lets_the_one_it_held_back_run(tmp_path: Path, talon: Talon) -> None:
    # once_per_period held the younger run back while the older was ready; the older failed
    # at dispatch (no such param), and the --wait ended with the younger blocked.
    jobs = """jobs:
  o: {command: 'echo ${params.x}', trigger: external, constraints: {once_per_period: true}}
"""
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    now = "2026-11-27T10:00:00Z"
    first = talon("-C", str(root), "trigger", "o", "--now", now).out.strip()
    second = talon("-C", str(root), "trigger", "o", "--param", "x=1", "--now", now).out.strip()
    talon("-C", str(root), "reconcile", "--wait", "--now", now)
    got = runs(root)
    assert got[first]["state"] == "failed" and "params.x" in got[first]["reason"]
    assert got[second]["state"] == "succeeded"


def test_a_call_job_runs_inprocess_under_a_default_executor_for_commands(
    tmp_path: Path, talon: Talon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """talon.yaml's `defaults: {executor: local}` (the SPEC's example, and what `init` writes)
    is for commands: a job giving `call:` and no executor of its own still runs inprocess."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "callme.py").write_text("def main(ctx):\n    print('called', ctx)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "lib"))
    root = write_repo(
        tmp_path / "repo",
        {
            "talon.yaml": "timezone: UTC\ndefaults: {executor: local}\n"
            "executors:\n  local: {type: local, max_parallel: 8}\n",
            "schedule/a.yaml": "jobs:\n  py:\n    call: callme:main\n    trigger: external\n",
        },
    )
    assert talon("-C", str(root), "validate").code == 0
    run_id = talon("-C", str(root), "trigger", "py", "--now", "2026-11-27T10:00:00Z").out.strip()
    done = talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T10:00:00Z")
    assert done.code == 0, done.out
    assert "on inprocess" in done.out
    assert runs(root)[run_id]["state"] == "succeeded"
    assert "called" in talon("-C", str(root), "log", run_id).out


def test_validate_reports_a_job_its_executor_cannot_run(tmp_path: Path, talon: Talon) -> None:
    root = write_repo(
        tmp_path,
        {
            "talon.yaml": "timezone: UTC\nexecutors:\n  py: {type: inprocess}\n",
            "schedule/a.yaml": (
                "jobs:\n"
                "  cmd:\n    command: echo hi\n    executor: py\n    trigger: external\n"
                "  fn:\n    call: os.path:join\n    executor: local\n    trigger: external\n"
            ),
        },
    )
    result = talon("-C", str(root), "validate")
    assert result.code == 1
    assert result.lines == [
        "schedule/a.yaml:4:15: job 'cmd' gives `command:`, which an inprocess executor cannot "
        "run (it needs `call: module:function`); executor 'py'",
        "schedule/a.yaml:8:15: job 'fn' gives `call:`, which only an inprocess executor runs; "
        "executor 'local' is local",
    ]


def test_a_broken_schedule_file_does_not_keep_anyone_from_seeing_or_stopping_runs(
    tmp_path: Path, talon: Talon
) -> None:
    root, run_id = triggered(tmp_path, talon, "ok", "sleep 30")
    now = NOW
    assert talon("-C", str(root), "reconcile", *now).code == 0
    pid = runs(root)[run_id]["executor"]["handle"]["pid"]
    (root / "schedule" / "broken.yaml").write_text(
        'jobs:\n  bad:\n    command: "true"\n    trigger: "61 * * * *"\n'
    )
    assert talon("-C", str(root), "reconcile", *now).code == 1  # passes stay refused
    status = talon("-C", str(root), "status", *now)
    assert status.code == 0
    assert "running" in status.out and "1 problem(s)" in status.err
    cancel = talon("-C", str(root), "cancel", run_id, *now)
    assert cancel.code == 0 and "skipped" in cancel.out
    from talon.executors.runner import read_proc

    deadline = time.monotonic() + 10
    while (proc := read_proc(pid)) is not None and not proc.dead:
        assert time.monotonic() < deadline, "the run's process was not stopped"
        time.sleep(0.05)


def test_status_of_a_period_lists_jobs_gone_from_the_schedule(tmp_path: Path, talon: Talon) -> None:
    root, run_id = triggered(tmp_path, talon, "gone", "'true'")
    now = NOW
    assert talon("-C", str(root), "reconcile", "--wait", *now).code == 0
    (root / "schedule" / "a.yaml").write_text("jobs: {}\n")
    listed = talon("-C", str(root), "status", "--period", "2026-11-27", "--json", *now)
    assert [r["run"] for r in json.loads(listed.out)] == [run_id]
    one = talon("-C", str(root), "status", "--period", "2026-11-27", "--job", "gone", *now)
    assert run_id in one.out


@pytest.mark.parametrize("catchup", ["none", "latest"])
def test_after_an_outage_only_the_newest_fire_is_on_time(
    tmp_path: Path, talon: Talon, catchup: str
) -> None:
    """A minutely job and no pass for an hour: the fires of the last five minutes were
    missed like the others (catchup none or latest: one run, the newest, on time), while a
    pass a few minutes late, under load, is in time for every fire since the one before."""
    job = f'jobs:\n  a: {{command: "true", trigger: "* * * * *", catchup: {catchup}}}\n'
    root = write_repo(tmp_path / "outage", {"schedule/a.yaml": job})
    talon("-C", str(root), "reconcile", "--now", "2026-03-04T05:59:30Z")
    talon("-C", str(root), "reconcile", "--now", "2026-03-04T07:00:10Z")
    assert sorted(runs(root)) == ["a@20260304T070000Z"]
    root = write_repo(tmp_path / "late", {"schedule/a.yaml": job})
    talon("-C", str(root), "reconcile", "--now", "2026-03-04T06:57:10Z")
    talon("-C", str(root), "reconcile", "--now", "2026-03-04T07:00:10Z")
    assert sorted(runs(root)) == [  # (06:57 came before the job was first seen)
        "a@20260304T065800Z",
        "a@20260304T065900Z",
        "a@20260304T070000Z",
    ]


def test_status_shows_a_run_started_under_a_later_clock(tmp_path: Path, talon: Talon) -> None:
    """A run started with `--now` in the future and listed on the real clock has a negative
    duration: status lists it (it raised ValueError from format_duration)."""
    root = write_repo(
        tmp_path, {"schedule/a.yaml": "jobs:\n  d:\n    command: sleep 30\n    trigger: external\n"}
    )
    future = "2030-12-02T06:00:00Z"
    run_id = talon("-C", str(root), "trigger", "d", "--now", future).out.strip()
    assert talon("-C", str(root), "reconcile", "--now", future).code == 0
    listed = talon("-C", str(root), "status", "--period", "2030-12-02")
    assert listed.code == 0, listed.err
    (line,) = [x for x in listed.lines if run_id in x]
    assert "running" in line and " -" in line
    talon("-C", str(root), "cancel", run_id, "--now", future)


def test_a_run_lost_with_its_wrapper_leaves_nothing_running_on_its_resources(
    tmp_path: Path, talon: Talon
) -> None:
    """kill -9 of the wrapper (the handle's pid) made the run lost and gave its resource to
    the next run while its command went on: two runs on a capacity-1 resource."""
    import signal

    from talon.executors.runner import read_proc

    jobs = (
        "jobs:\n"
        "  a: {command: sleep 811.25, trigger: external, resources: [{select: r/l}]}\n"
        "  b: {command: sleep 812.25, trigger: external, resources: [{select: r/l}]}\n"
    )
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs, "resources/r.yaml": "l: {}\n"})
    now = ("--now", "2026-11-27T10:00:00Z")
    a = talon("-C", str(root), "trigger", "a", *now).out.strip()
    assert talon("-C", str(root), "reconcile", *now).code == 0
    wrapper = runs(root)[a]["executor"]["handle"]["pid"]
    from talon.executors.runner import cmdline, processes

    deadline = time.monotonic() + 10
    while not (found := [p.pid for p in processes() if cmdline(p.pid) == ["sleep", "811.25"]]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    (sleeper,) = found
    b = talon("-C", str(root), "trigger", "b", *now).out.strip()
    os.kill(wrapper, signal.SIGKILL)
    os.waitpid(wrapper, 0)  # (this process started it)
    out = talon("-C", str(root), "reconcile", *now).out
    assert runs(root)[a]["state"] == "failed" and runs(root)[a]["reason"] == "lost"
    assert "process(es) it left" in out  # (the subshell and its sleep)
    deadline = time.monotonic() + 5
    while (proc := read_proc(sleeper)) is not None and not proc.dead:
        assert time.monotonic() < deadline, "the lost run's command still runs"
        time.sleep(0.02)
    assert runs(root)[b]["state"] == "running"  # the resource is free now, and only now
    talon("-C", str(root), "cancel", b, *now)


def test_plan_tells_what_reconcile_makes_of_ended_and_lost_runs(
    tmp_path: Path, talon: Talon
) -> None:
    """plan said "nothing to do" where reconcile would fail a run, retry it and mark another
    lost: it never asked the executor about real runs."""
    import signal

    jobs = (
        "jobs:\n"
        "  b: {command: 'false', trigger: external, retries: 1}\n"
        "  c: {command: sleep 30, trigger: external}\n"
    )
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    at = ("--now", "2026-03-04T01:00:00Z")
    talon("-C", str(root), "trigger", "b", *at)
    talon("-C", str(root), "trigger", "c", *at)
    assert talon("-C", str(root), "reconcile", *at).code == 0
    handles = {r["job"]: r["executor"]["handle"] for r in runs(root).values()}
    os.killpg(handles["c"]["pid"], signal.SIGKILL)
    os.waitpid(handles["c"]["pid"], 0)
    deadline = time.monotonic() + 10
    while b"b." not in Path(handles["b"]["rc_file"]).read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    state = {p: p.read_bytes() for p in (root / "state").rglob("*") if p.is_file()}
    later = ("--now", "2026-03-04T01:05:00Z")
    plan = talon("-C", str(root), "plan", *later)
    assert state == {p: p.read_bytes() for p in (root / "state").rglob("*") if p.is_file()}
    done = talon("-C", str(root), "reconcile", *later)
    assert plan.lines == done.lines
    assert any(line.startswith("fail     c@") and "lost" in line for line in plan.lines)
    assert any(line.startswith("retry    b@") for line in plan.lines)
    talon("-C", str(root), "cancel", "b@20260304T010000Z.ext.r2", *later)


def test_explain_names_a_due_trigger_no_pass_has_fired_yet(tmp_path: Path, talon: Talon) -> None:
    """explain said the next trigger was tomorrow's while today's was due and the next pass
    would create its run."""
    root = write_repo(
        tmp_path, {"schedule/a.yaml": "jobs:\n  d: {command: 'true', trigger: '0 6 * * *'}\n"}
    )
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T05:00:00Z")
    out = talon("-C", str(root), "explain", "d", "--now", "2026-11-27T06:00:30Z").out
    assert "next trigger: 2026-11-27T06:00:00+00:00 (due: the next pass creates its run)" in out
    data = json.loads(
        talon("-C", str(root), "explain", "d", "--json", "--now", "2026-11-27T06:00:30Z").out
    )
    assert (data["next_trigger"], data["next_trigger_due"]) == ("2026-11-27T06:00:00+00:00", True)
    assert talon("-C", str(root), "reconcile", "--now", "2026-11-27T06:00:30Z").code == 0
    out = talon("-C", str(root), "explain", "d", "--now", "2026-11-27T06:00:40Z").out
    assert "next trigger: 2026-11-28T06:00:00+00:00" in out


def test_progress_and_artifacts_are_refused_for_a_run_that_has_ended(
    tmp_path: Path, talon: Talon
) -> None:
    root, run_id = triggered(tmp_path, talon, "d", "'true'")
    now = NOW
    assert talon("-C", str(root), "reconcile", "--wait", *now).code == 0
    before = runs(root)[run_id]
    assert before["state"] == "succeeded"
    late = talon("-C", str(root), "progress", "--run", run_id, "--percent", "50", *now)
    assert late.code == 1 and "succeeded" in late.err
    late = talon("-C", str(root), "artifact", "add", "https://x/y", "--run", run_id, *now)
    assert late.code == 1 and "succeeded" in late.err
    assert runs(root)[run_id] == before


def test_a_run_records_the_kind_of_trigger_that_fired_it(tmp_path: Path, talon: Talon) -> None:
    """In a list with a cron expression, a fire of the windows entry was recorded as cron."""
    job = (
        "jobs:\n  d:\n    command: 'true'\n    trigger:\n      - '0 6 * * *'\n"
        "      - {windows: [{every: 30m, from: '07:00', to: '08:00'}]}\n      - external\n"
    )
    root = write_repo(tmp_path, {"schedule/a.yaml": job})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T05:00:00Z")
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T06:00:10Z")
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T07:00:10Z")
    kinds = {r["id"]: r["trigger"]["type"] for r in runs(root).values()}
    assert kinds == {"d@20261127T060000Z": "cron", "d@20261127T070000Z": "window"}


def test_a_plugin_beside_talon_yaml_is_importable(tmp_path: Path, talon: Talon) -> None:
    root = write_repo(
        tmp_path,
        {
            "talon.yaml": "timezone: UTC\nplugins: {constraints: {flag: besideext:flag}}\n",
            "besideext.py": "def flag(run, options, view, now):\n    return 'block', 'no flag'\n",
            "schedule/a.yaml": "jobs:\n  d: {command: 'true', trigger: external, "
            "constraints: {flag: {}}}\n",
        },
    )
    assert talon("-C", str(root), "validate").code == 0
    now = ("--now", "2026-11-27T10:00:00Z")
    run_id = talon("-C", str(root), "trigger", "d", *now).out.strip()
    talon("-C", str(root), "reconcile", *now)
    assert runs(root)[run_id]["state"] == "blocked"
    assert "no flag" in runs(root)[run_id]["reason"]


def test_a_bad_now_or_directory_is_a_usage_error_everywhere(tmp_path: Path, talon: Talon) -> None:
    root = write_repo(tmp_path / "repo", {"schedule/a.yaml": "jobs: {}\n"})
    assert talon("-C", str(root), "resources", "--now", "garbage").code == 2
    assert talon("-C", str(tmp_path / "nowhere"), "validate").code == 2
    assert talon("-C", str(tmp_path / "nowhere"), "status").code == 2


def test_start_by_keeps_the_poll_interval_but_fails_on_time(tmp_path: Path, talon: Talon) -> None:
    """A job with start_by was checked at every pass, whatever its poll (a plugin constraint
    ran each time); it is now checked at its poll, and at its deadline."""
    flag = tmp_path / "flag"
    job = (
        "jobs:\n  d:\n    command: 'true'\n    trigger: '0 6 * * *'\n    poll: 10m\n"
        "    constraints: {flag: {}, start_by: 'START'}\n"
    )
    plugin = (
        "import os\ndef flag(run, options, view, now):\n"
        f"    return ('pass', 'flag') if os.path.exists({str(flag)!r}) else ('block', 'no flag')\n"
    )
    for start_by, at, state in (
        ("23:00", "06:05", "blocked"),
        ("23:00", "06:11", "running"),
        ("06:07", "06:08", "failed"),
    ):
        root = write_repo(
            tmp_path / f"r{start_by}{at}".replace(":", ""),
            {
                "talon.yaml": "timezone: UTC\nplugins: {constraints: {flag: flagext:flag}}\n",
                "lib/flagext.py": plugin,
                "schedule/a.yaml": job.replace("START", start_by),
            },
        )
        flag.unlink(missing_ok=True)
        talon("-C", str(root), "reconcile", "--now", "2026-03-04T05:00:00Z")
        talon("-C", str(root), "reconcile", "--now", "2026-03-04T06:00:00Z")
        assert runs(root)["d@20260304T060000Z"]["state"] == "blocked"
        if state != "failed":
            flag.touch()
        talon("-C", str(root), "reconcile", "--now", f"2026-03-04T{at}:00Z")
        assert runs(root)["d@20260304T060000Z"]["state"] == state, (start_by, at)


def test_a_run_made_by_its_upstreams_success_does_not_wait_for_it(
    tmp_path: Path, talon: Talon
) -> None:
    """A run created because `up` succeeded recorded a first step `blocked: waiting for up to
    succeed`: its after constraint was checked before the view had up's end."""
    jobs = (
        "jobs:\n  up: {command: 'true', trigger: '0 6 * * *'}\n"
        "  d1: {command: 'true', trigger: {after: up}, constraints: {after: [up]}}\n"
    )
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-03-04T05:00:00Z")
    done = talon("-C", str(root), "reconcile", "--wait", "--now", "2026-03-04T06:00:10Z")
    assert done.code == 0
    assert not any(line.startswith("block") for line in done.lines), done.out
    (d1,) = [r for r in runs(root).values() if r["job"] == "d1"]
    assert d1["state"] == "succeeded"
    assert [h["state"] for h in d1["history"]] == ["ready", "running", "succeeded"]


def test_a_run_finishes_when_its_command_ended_not_when_a_pass_noticed(
    tmp_path: Path, talon: Talon
) -> None:
    """`finished` was the time of the pass that collected the run: from cron every minute, a
    one-second job took up to a minute, and so did the durations that estimate progress."""
    from datetime import datetime

    root = write_repo(
        tmp_path, {"schedule/a.yaml": "jobs:\n  s: {command: sleep 1.2, trigger: external}\n"}
    )
    run_id = talon("-C", str(root), "trigger", "s").out.strip()
    assert talon("-C", str(root), "reconcile").code == 0
    time.sleep(4.5)
    assert talon("-C", str(root), "reconcile").code == 0
    run = runs(root)[run_id]
    assert run["state"] == "succeeded"
    took = datetime.fromisoformat(run["finished"]) - datetime.fromisoformat(run["started"])
    assert 1 <= took.total_seconds() <= 3, took  # (run files keep whole seconds)
    collected = datetime.fromisoformat(run["history"][-1]["at"])
    assert collected > datetime.fromisoformat(run["finished"])  # (the decision's own time)


def test_cancel_that_cannot_stop_a_run_changes_nothing(tmp_path: Path, talon: Talon) -> None:
    """With talon.yaml giving the run's executor an unusable setting, cancel marked the run
    skipped, then failed to build the executor: the process ran on, and no pass would stop
    a skipped run."""
    from talon.executors.runner import read_proc

    config = "timezone: UTC\nexecutors:\n  box: {type: local, kill_grace: KG}\n"
    root = write_repo(
        tmp_path,
        {
            "talon.yaml": config.replace("KG", "5s"),
            "schedule/a.yaml": "jobs:\n  s: {command: sleep 877, trigger: external, "
            "executor: box}\n",
        },
    )
    now = ("--now", "2026-11-27T10:00:00Z")
    run_id = talon("-C", str(root), "trigger", "s", *now).out.strip()
    assert talon("-C", str(root), "reconcile", *now).code == 0
    pid = runs(root)[run_id]["executor"]["handle"]["pid"]
    (root / "talon.yaml").write_text(config.replace("KG", "soon"))
    refused = talon("-C", str(root), "cancel", run_id, *now)
    assert refused.code == 1 and "nothing was changed" in refused.err
    assert runs(root)[run_id]["state"] == "running"
    proc = read_proc(pid)
    assert proc is not None and not proc.dead
    (root / "talon.yaml").write_text(config.replace("KG", "5s"))
    assert talon("-C", str(root), "cancel", run_id, *now).code == 0
    deadline = time.monotonic() + 10
    while (proc := read_proc(pid)) is not None and not proc.dead:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_late_pass_keeps_every_fire_since_the_one_before(tmp_path: Path, talon: Talon) -> None:
    """Review: the outage test measured from the job's cursor, which moves only when the job
    is due; passes every minute, then one 3.5 minutes late, lost the 09:00 fire."""
    job = "jobs:\n  a: {command: 'true', trigger: ['0 9 * * *', '2 9 * * *'], catchup: none}\n"
    root = write_repo(tmp_path, {"schedule/a.yaml": job})
    for minute in range(0, 60, 5):
        talon("-C", str(root), "reconcile", "--now", f"2026-03-04T08:{minute:02d}:05Z")
    talon("-C", str(root), "reconcile", "--now", "2026-03-04T08:59:05Z")
    talon("-C", str(root), "reconcile", "--now", "2026-03-04T09:02:30Z")
    assert sorted(runs(root)) == ["a@20260304T090000Z", "a@20260304T090200Z"]


def test_an_ssh_wrapper_cut_short_in_transit_is_not_started(tmp_path: Path) -> None:
    """The ssh start script ran whatever part of the wrapper arrived: a connection dropping
    midway started a truncated wrapper, and its run directory kept a retry from starting."""
    import subprocess

    from talon.executors.remote import wrapper_script
    from talon.executors.ssh import _start_script

    run_dir = tmp_path / "runs" / "r1"
    (tmp_path / "runs").mkdir()
    wrapper = wrapper_script(
        f"echo ran > {tmp_path}/ran",
        state_dir=str(run_dir),
        env={},
        workdir=None,
        timeout_s=None,
        output=str(run_dir / "out"),
        remove_self=True,
    )
    start = _start_script(str(run_dir))

    def send(text: str) -> str:
        return subprocess.run(
            ["sh", "-c", start], input=text, capture_output=True, text=True, timeout=30, check=False
        ).stdout

    cut = send(wrapper[: len(wrapper) // 2])
    assert "truncated=1" in cut and "started" not in cut
    assert not run_dir.exists() and not (tmp_path / "ran").exists()
    whole = send(wrapper)
    assert "started=1" in whole and "pid=" in whole
    deadline = time.monotonic() + 10
    while not (tmp_path / "ran").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_plan_until_fails_a_waiting_run_at_its_start_by(tmp_path: Path, talon: Talon) -> None:
    """plan --until stepped only at triggers and simulated ends: a run blocked past its
    start_by failed at the next day's trigger in the plan (reconcile fails it at 07:00)."""
    jobs = (
        "jobs:\n  up: {command: 'true', trigger: external}\n"
        "  late: {command: 'true', trigger: '0 6 * * *', "
        "constraints: {start_by: '07:00', after: [up]}}\n"
    )
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    out = talon(
        "-C", str(root), "plan", "--now", "2026-12-01T05:00Z", "--until", "2026-12-01T12:00Z"
    ).lines
    assert out[-1] == (
        "2026-12-01T07:00:01+00:00  fail     late@20261201T060000Z: "
        "start_by 07:00 passed at 07:00:01"
    )


def test_retry_of_a_run_not_finished_is_a_failed_check_not_a_usage_error(
    tmp_path: Path, talon: Talon
) -> None:
    root, run_id = triggered(tmp_path, talon, "s", "sleep 30")
    now = NOW
    refused = talon("-C", str(root), "retry", run_id, *now)
    assert refused.code == 1 and "only a finished run can be retried" in refused.err


def test_a_nul_byte_in_a_command_fails_its_run_in_a_batch_too(tmp_path: Path, talon: Talon) -> None:
    """Four runs due at once start through the spawner thread, whose C strings end at the
    first NUL: `echo ok\\0; exit 3` must fail to start, as it does alone, not run as `echo ok`."""
    jobs = "jobs:\n" + "".join(
        f'  j{i}: {{command: "echo ok{i}{chr(92) + "0" if i == 0 else ""}; exit 3", '
        f'trigger: "0 10 * * *"}}\n'
        for i in range(4)
    )
    root = write_repo(tmp_path, {"schedule/a.yaml": jobs})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T09:00:00Z")
    result = talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-27T10:00:01Z")
    assert "Traceback" not in result.err
    got = runs(root)
    bad = got["j0@20261127T100000Z"]
    assert bad["state"] == "failed" and "null byte" in bad["reason"], bad
    assert all(got[f"j{i}@20261127T100000Z"]["exit_code"] == 3 for i in (1, 2, 3)), got
