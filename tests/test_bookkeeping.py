"""The index as checkpoint + log, and the store's group commit.

A pass appends what it changed to `state/.talon/index.log`; `index.json` is only rewritten at a
checkpoint. Whatever the mix of files, a load in a fresh process must give the same book as the
process that saved it, and a process must notice what others wrote behind it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from talon import bookkeeping, store
from talon.bookkeeping import INDEX, INDEX_LOG, JOURNAL, Book, load, save
from talon.store import FileStore
from tests.conftest import Talon, write_repo

CHAIN = """
jobs:
  a:
    command: 'true'
    trigger: '0 6 * * *'
  b:
    command: 'true'
    trigger: {after: a}
  w:
    command: 'true'
    trigger: '0 6 * * *'
    constraints: {after: [b]}
"""


def fresh_load(state: Path) -> Book:
    """A load as a new process makes it: nothing remembered."""
    bookkeeping._SAVED.clear()
    return load(FileStore(state))


def same(a: Book, b: Book) -> None:
    assert (a.open, a.cursors, a.checked, a.durations) == (
        b.open,
        b.cursors,
        b.checked,
        b.durations,
    )


def test_passes_append_to_the_log_and_a_fresh_load_agrees(tmp_path: Path, talon: Talon) -> None:
    """The passes of one process (as in `reconcile --wait` or `watch`) append; the index is
    rewritten when the process is done."""
    import time
    from datetime import datetime

    from talon.passes import Pass
    from talon.repo import open_repo

    root = write_repo(tmp_path, {"schedule/a.yaml": CHAIN})
    book_dir = root / "state/.talon"
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T05:00:00Z")
    index_before = (book_dir / INDEX).stat()
    repo = open_repo(str(root), {})
    now = datetime.fromisoformat("2026-11-27T06:00:30+00:00")
    decisions = []
    for _ in range(200):
        decisions += Pass(repo.spec, repo.store, now).run()
        if sum(d.action == "succeed" for d in decisions) == 3:
            break
        time.sleep(0.01)
    assert [d.action for d in decisions].count("succeed") == 3, decisions
    index_after = (book_dir / INDEX).stat()
    assert (index_after.st_ino, index_after.st_mtime_ns) == (
        index_before.st_ino,
        index_before.st_mtime_ns,
    ), "index.json was rewritten, not appended to"
    log = (book_dir / INDEX_LOG).read_text()
    assert log.endswith("\n") and "\nda\t" in "\n" + log, log  # a's duration, as a log line
    in_process = load(repo.store)
    book = fresh_load(root / "state")
    assert book.open == set(), book.open  # a, b and w all ended
    assert set(book.cursors) == {"a", "b", "w"}
    assert set(book.durations) == {"a", "b", "w"}
    same(book, in_process)
    # `reconcile --wait` leaves a checkpoint behind: the index whole, the log empty.
    result = talon("-C", str(root), "reconcile", "--wait", "--now", "2026-11-28T06:00:30Z")
    assert result.code == 0, result.err
    assert [ln.split()[0] for ln in result.out.splitlines()].count("succeed") == 3, result.out
    assert (book_dir / INDEX_LOG).stat().st_size == 0
    index = json.loads((book_dir / INDEX).read_text())
    assert [len(index["durations"][j]) for j in "abw"] == [2, 2, 2]


def test_a_run_file_emptied_by_a_power_cut_is_restored_from_the_log(
    tmp_path: Path, talon: Talon
) -> None:
    """A pass writes run files without their own fsync (one sync for the batch); a power cut
    before that sync can leave a new file empty. The next pass restores it from the log line
    written with it, and moves the damaged file aside."""
    from datetime import datetime

    from talon.passes import Pass
    from talon.repo import open_repo

    root = write_repo(tmp_path, {"schedule/a.yaml": CHAIN})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T05:00:00Z")
    repo = open_repo(str(root), {})
    Pass(repo.spec, repo.store, datetime.fromisoformat("2026-11-27T06:00:30+00:00")).run()
    blocked = root / "state/2026-11-27/w/w@20261127T060000Z.json"
    whole = blocked.read_text()
    assert '"state": "blocked"' in whole
    log = root / "state/.talon" / INDEX_LOG
    logged = log.read_text()
    assert "\n#\n" in logged, "the pass marked its syncs"
    # What a power cut before the sync leaves: the file empty, the sync marks not on disk.
    blocked.write_text("")
    log.write_text("".join(ln + "\n" for ln in logged.splitlines() if ln != "#"))
    bookkeeping._SAVED.clear()  # and the process is gone: a new one remembers nothing
    result = talon("-C", str(root), "reconcile", "--now", "2026-11-27T06:00:40Z")
    assert result.code == 0, result.err
    assert "recover  w@20261127T060000Z" in result.out, result.out
    assert "damaged" in result.out
    # Restored, then checked again at once (its upstream may have moved meanwhile): the same
    # run, its history kept.
    restored, before = json.loads(blocked.read_text()), json.loads(whole)
    assert restored["state"] == "blocked"
    assert restored["created"] == before["created"]
    assert restored["history"][: len(before["history"])] == before["history"]
    assert list(blocked.parent.glob("*.corrupt-*")), "the empty file was moved aside, not deleted"


def test_a_file_damaged_after_its_sync_is_not_overwritten_with_an_older_copy(
    tmp_path: Path, talon: Talon
) -> None:
    """Past a sync mark the file was on disk whole: damage since is someone's edit, and the
    log's copy may be older than what the file held (a cancel, a progress report). It is moved
    aside and reported, not restored."""
    from datetime import datetime

    from talon.passes import Pass
    from talon.repo import open_repo

    root = write_repo(tmp_path, {"schedule/a.yaml": CHAIN})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T05:00:00Z")
    repo = open_repo(str(root), {})
    Pass(repo.spec, repo.store, datetime.fromisoformat("2026-11-27T06:00:30+00:00")).run()
    blocked = root / "state/2026-11-27/w/w@20261127T060000Z.json"
    blocked.write_text("{not json")
    bookkeeping._SAVED.clear()
    result = talon("-C", str(root), "reconcile", "--now", "2026-11-27T06:00:40Z")
    assert "recover  w@" not in result.out, result.out
    assert "unreadable run file" in result.err
    assert not blocked.exists()
    assert list(blocked.parent.glob("*.corrupt-*"))


def test_replay_applies_sets_and_deletions_and_ignores_a_torn_line(tmp_path: Path) -> None:
    st = FileStore(tmp_path / "state")
    st.ensure()
    (st.book / INDEX).write_text(
        json.dumps(
            {
                "version": 1,
                "open": ["p/a/a@1.json", "p/b/b@1.json"],
                "cursors": {"a": {"hash": "h", "cursor": "2026-11-27T06:00:00+00:00"}},
                "checked": {"a@1": 1.0, "b@1": 1.0},
                "durations": {"a": [1.0]},
            }
        )
    )
    (st.book / INDEX_LOG).write_text(
        "-p/a/a@1.json\n"
        "+p/c/c@1.json\n"
        'cb\t{"hash":"x","cursor":"2026-11-27T07:00:00+00:00"}\n'
        "ka@1\t\n"
        "kb@1\t2.5\n"
        "da\t[1.0,2.0]\n"
        "=p/d/d@1.json\t{}\n"
        "-p/b/b@1.jso"  # torn: a writer died mid-line
    )
    book = fresh_load(st.root)
    assert book.open == {"p/b/b@1.json", "p/c/c@1.json", "p/d/d@1.json"}
    assert set(book.cursors) == {"a", "b"}
    assert book.checked == {"b@1": 2.5}
    assert book.durations == {"a": [1.0, 2.0]}
    assert book.unwritten == {"p/d/d@1.json": "{}"}


def test_a_long_log_is_checkpointed_into_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = FileStore(tmp_path / "state")
    st.ensure()
    book = fresh_load(st.root)
    save(st, book)  # no index yet: the first save is a checkpoint
    assert (st.book / INDEX).exists()
    monkeypatch.setattr(bookkeeping, "CHECKPOINT_BYTES", 200)
    for i in range(20):
        book = load(st)
        book.open.add(f"2026-11-27/j{i}/j{i}@x.json")
        book.add_duration(f"j{i}", float(i))
        save(st, book)
        assert (st.book / INDEX_LOG).stat().st_size <= 200
    index = json.loads((st.book / INDEX).read_text())
    assert len(index["open"]) > 10, "checkpoints carried the log into the index"
    same(fresh_load(st.root), book)


def test_a_process_sees_what_another_appended_or_checkpointed(tmp_path: Path) -> None:
    st = FileStore(tmp_path / "state")
    st.ensure()
    book = fresh_load(st.root)
    book.open.add("p/a/a@1.json")
    save(st, book)  # checkpoint (first save), remembered
    book = load(st)
    book.open.add("p/b/b@1.json")
    save(st, book)  # appended, remembered
    # Another process appends a change.
    other = (
        "from pathlib import Path; from talon.bookkeeping import load, save;"
        "from talon.store import FileStore;"
        "s = FileStore(Path({root!r})); b = load(s); b.open.add('p/c/c@1.json'); {extra}save(s, b{kw})"
    )
    run = [sys.executable, "-c", other.format(root=str(st.root), extra="", kw="")]
    subprocess.run(run, check=True)
    assert load(st).open == {"p/a/a@1.json", "p/b/b@1.json", "p/c/c@1.json"}
    # Another process checkpoints (rewrites the index, empties the log) and drops a run.
    code = other.format(
        root=str(st.root), extra="b.open.discard('p/a/a@1.json'); ", kw=", checkpoint=True"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (st.book / INDEX_LOG).stat().st_size == 0
    assert load(st).open == {"p/b/b@1.json", "p/c/c@1.json"}


def test_creator_lines_move_from_the_journal_into_the_log(tmp_path: Path) -> None:
    st = FileStore(tmp_path / "state")
    st.ensure()
    save(st, fresh_load(st.root))
    bookkeeping.journal_open(st, "p/e/e@1.json")  # `talon trigger`, outside any pass
    book = load(st)
    assert "p/e/e@1.json" in book.open
    save(st, book)
    assert (st.book / JOURNAL).stat().st_size == 0
    assert "p/e/e@1.json" in fresh_load(st.root).open


def test_group_commit_defers_and_syncs(tmp_path: Path) -> None:
    st = FileStore(tmp_path / "state")
    st.ensure()
    assert store.syncfs_available(), "Linux has syncfs: the fast path must be the one tested"
    with st.batched():
        path = st.book / "x"
        assert st.deferred(path)
        assert st._unsynced == [path]
        st.sync()
        assert st._unsynced == []
        st.deferred(path)
        st.sync_if_older(60)
        assert st._unsynced == [path], "younger than the bound: still waiting for company"
        st.sync_if_older(0)
        assert st._unsynced == []
    assert st._unsynced is None
    assert not st.deferred(path), "outside a batch every durable write syncs at once"


def test_without_syncfs_a_pass_falls_back_to_fsync_per_file(
    tmp_path: Path, talon: Talon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where there is no syncfs, the same passes work through one fsync per file written."""
    root = write_repo(tmp_path, {"schedule/a.yaml": CHAIN})
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALON_")}
    code = (
        "import sys; from talon import store; store._SYNCFS[:] = [None];"
        "from talon.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    for now in ("2026-11-27T05:00:00Z", "2026-11-27T06:00:30Z"):
        done = subprocess.run(
            [sys.executable, "-c", code, "-C", str(root), "reconcile", "--wait", "--now", now],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert [line.split()[:2] for line in done.stdout.splitlines()] == [
        ["create", "a@20261127T060000Z:"],
        ["ready", "a@20261127T060000Z:"],
        ["create", "w@20261127T060000Z:"],
        ["block", "w@20261127T060000Z:"],
        ["dispatch", "a@20261127T060000Z:"],
        ["create", "b@20261127T060000Z.after.a:"],
        ["ready", "b@20261127T060000Z.after.a:"],
        ["succeed", "a@20261127T060000Z"],
        ["dispatch", "b@20261127T060000Z.after.a:"],
        ["succeed", "b@20261127T060000Z.after.a"],
        ["ready", "w@20261127T060000Z:"],
        ["dispatch", "w@20261127T060000Z:"],
        ["succeed", "w@20261127T060000Z"],
    ], done.stdout
    same(fresh_load(root / "state"), load(FileStore(root / "state")))


def test_a_watcher_tells_its_own_saves_from_others(tmp_path: Path) -> None:
    """`talon watch` is woken by events on the index files; only others' writes need a pass."""
    st = FileStore(tmp_path / "state")
    st.ensure()
    bookkeeping._SAVED.clear()
    assert bookkeeping.written_by_others(st), "nothing saved by this process yet"
    book = load(st)
    save(st, book)
    assert not bookkeeping.written_by_others(st)
    book = load(st)
    book.open.add("p/a/a@1.json")
    save(st, book)
    assert not bookkeeping.written_by_others(st), "its own append"
    with open(st.book / INDEX_LOG, "a") as fh:  # another process's pass
        fh.write("+p/b/b@1.json\n")
    assert bookkeeping.written_by_others(st)
    save(st, load(st))
    assert not bookkeeping.written_by_others(st)
    bookkeeping.journal_open(st, "p/c/c@1.json")  # `talon trigger`
    assert bookkeeping.written_by_others(st)


def test_a_checkpoint_keeps_the_lines_no_pass_has_acted_on(tmp_path: Path) -> None:
    """A killed pass fired a run it never wrote; a checkpoint taken before any pass ran (the
    end of another `reconcile --wait`, `fsck --repair`) must not drop the line."""
    st = FileStore(tmp_path / "state")
    st.ensure()
    save(st, fresh_load(st.root))
    bookkeeping.journal_fired(st, "2026-11-27/a/a@x.json", '{"id": "a@x"}')
    bookkeeping._SAVED.clear()
    save(st, load(st), checkpoint=True)
    assert "=2026-11-27/a/a@x.json\t" in (st.book / INDEX_LOG).read_text()
    assert fresh_load(st.root).unwritten == {"2026-11-27/a/a@x.json": '{"id": "a@x"}'}
    # Once the file exists, the next checkpoint lets the line go.
    (st.root / "2026-11-27/a").mkdir(parents=True)
    (st.root / "2026-11-27/a/a@x.json").write_text("{}")
    save(st, load(st), checkpoint=True)
    assert (st.book / INDEX_LOG).stat().st_size == 0


def test_lines_a_checkpoint_carried_over_do_not_count_towards_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `--wait` holding back many runs' files carries their lines over each checkpoint: the
    next one is due when the log has grown CHECKPOINT_BYTES past them, not at once."""
    st = FileStore(tmp_path / "state")
    st.ensure()
    save(st, fresh_load(st.root))
    for i in range(10):  # ~600 bytes of lines no pass has acted on: carried over
        bookkeeping.journal_fired(
            st, f"2026-11-27/a/a@{i}.json", json.dumps({"id": f"a@{i}", "x": "y" * 20})
        )
    save(st, load(st), checkpoint=True)
    kept = (st.book / INDEX_LOG).stat().st_size
    assert kept > 400
    monkeypatch.setattr(bookkeeping, "CHECKPOINT_BYTES", 300)
    index = (st.book / INDEX).stat()
    book = load(st)
    book.add_duration("b", 1.0)
    save(st, book)  # grown by far less than 300 bytes past what was carried over
    assert (st.book / INDEX).stat().st_mtime_ns == index.st_mtime_ns, "no checkpoint"
    assert (st.book / INDEX_LOG).stat().st_size > kept, "appended"
    for i in range(10):
        book = load(st)
        book.add_duration(f"c{i}", float(i))
        save(st, book)
    assert (st.book / INDEX_LOG).stat().st_size <= kept + 300, "checkpointed once it had grown"
    same(fresh_load(st.root), book)


def test_a_log_another_checkpoint_replaced_counts_whole(tmp_path: Path) -> None:
    """What this process's checkpoint carried over is not subtracted from another file: a log
    another process's checkpoint rewrote (carrying its own lines over) counts from zero."""
    st = FileStore(tmp_path / "state")
    st.ensure()
    save(st, fresh_load(st.root))
    bookkeeping.journal_fired(
        st, "2026-11-27/a/a@1.json", json.dumps({"id": "a@1", "x": "y" * 400})
    )
    save(st, load(st), checkpoint=True)
    log = st.book / INDEX_LOG
    kept = log.stat().st_size
    assert bookkeeping._grown(str(st.book), log.stat()) == 0
    with log.open("a") as fh:
        fh.write("\nk x\t1\n")
    assert bookkeeping._grown(str(st.book), log.stat()) == log.stat().st_size - kept
    store.write_atomic(log, log.read_text())  # another process's checkpoint: a new file
    assert bookkeeping._grown(str(st.book), log.stat()) == log.stat().st_size
    log.write_text("")  # truncated in place, then shorter than what was kept
    assert bookkeeping._grown(str(st.book), log.stat()) == 0


def test_a_torn_line_spoils_only_itself(tmp_path: Path) -> None:
    st = FileStore(tmp_path / "state")
    st.ensure()
    save(st, fresh_load(st.root))
    with open(st.book / INDEX_LOG, "a") as fh:
        fh.write("+p/j/j@1.json\n-p/j/j@1.js")  # a power cut tore the second line
    book = load(st)
    book.open.add("p/k/k@1.json")
    save(st, book)
    assert fresh_load(st.root).open == {"p/j/j@1.json", "p/k/k@1.json"}


def test_a_cancelled_run_whose_file_is_damaged_later_is_not_revived(
    tmp_path: Path, talon: Talon
) -> None:
    """A logged copy older than a cancel must never come back: not when the damaged file is
    moved aside, nor by a later pass that finds the file missing."""
    from datetime import datetime

    from talon.passes import Pass
    from talon.repo import open_repo

    root = write_repo(tmp_path, {"schedule/a.yaml": CHAIN})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T05:00:00Z")
    repo = open_repo(str(root), {})
    Pass(repo.spec, repo.store, datetime.fromisoformat("2026-11-27T06:00:30+00:00")).run()
    assert talon("-C", str(root), "cancel", "w@20261127T060000Z").code == 0
    blocked = root / "state/2026-11-27/w/w@20261127T060000Z.json"
    assert '"state": "skipped"' in blocked.read_text()
    blocked.write_text("{damaged")
    for now in ("2026-11-27T06:00:40Z", "2026-11-27T06:00:50Z", "2026-11-27T06:01:00Z"):
        bookkeeping._SAVED.clear()  # each reconcile a new process
        result = talon("-C", str(root), "reconcile", "--now", now)
        assert "w@20261127T060000Z" not in result.out, result.out
    assert not blocked.exists(), "moved aside, and not written again"


def test_a_handle_written_inside_a_batch_is_logged(tmp_path: Path, talon: Talon) -> None:
    """The handle of a run whose file existed before its start (w: blocked, then ready) is
    written without an fsync of its own: its text goes to the log like every such write."""
    import time
    from datetime import datetime

    from talon.passes import Pass
    from talon.repo import open_repo

    root = write_repo(tmp_path, {"schedule/a.yaml": CHAIN})
    talon("-C", str(root), "reconcile", "--now", "2026-11-27T05:00:00Z")
    repo = open_repo(str(root), {})
    now = datetime.fromisoformat("2026-11-27T06:00:30+00:00")
    seen: list[str] = []
    for _ in range(300):
        seen += [f"{d.action} {d.run}" for d in Pass(repo.spec, repo.store, now).run()]
        if "dispatch w@20261127T060000Z" in seen:
            break
        time.sleep(0.01)
    assert "dispatch w@20261127T060000Z" in seen, seen
    log = (root / "state/.talon" / INDEX_LOG).read_text()
    logged = [
        json.loads(line.split("\t", 1)[1])
        for line in log.splitlines()
        if line.startswith("=2026-11-27/w/")
    ]
    assert any(((r.get("executor") or {}).get("handle") or {}).get("pid") for r in logged), log


@pytest.mark.parametrize(
    ("executor", "lock_mode", "sync_first"),
    [
        ("local", "flock", False),  # dies with this host, with its intent
        ("inprocess", "flock", False),
        ("ssh", "flock", True),  # runs on: its intent must be on disk first
        ("sge", "flock", True),
        ("slurm", "flock", True),
        ("local", "lockfile", True),  # state shared over NFS outlives this host
    ],
)
def test_which_starts_wait_for_their_intent_on_disk(
    tmp_path: Path, executor: str, lock_mode: str, sync_first: bool
) -> None:
    from datetime import datetime

    from talon.passes import Pass
    from talon.repo import open_repo

    options = {
        "ssh": "{type: ssh, host: h.example, known_hosts: kh}",
        "sge": "{type: sge}",
        "slurm": "{type: slurm}",
    }
    config = f"timezone: UTC\nstate: {{type: files, path: state, lock_mode: {lock_mode}}}\n" + (
        f"executors:\n  x: {options[executor]}\n" if executor in options else ""
    )
    name = "x" if executor in options else executor
    call = "  call: m:f\n" if executor == "inprocess" else "  command: 'true'\n"
    jobs = f"jobs:\n j:\n{call}  trigger: external\n  executor: {name}\n".replace("\n  ", "\n   ")
    root = write_repo(tmp_path, {"talon.yaml": config, "schedule/a.yaml": jobs})
    repo = open_repo(str(root), {})
    p = Pass(repo.spec, repo.store, datetime.fromisoformat("2026-11-27T06:00:00+00:00"))
    assert p._outlives_a_crash_here(repo.spec.jobs["j"]) is sync_first


def test_a_pass_does_not_take_its_own_sync_mark_for_someone_elses_write(tmp_path: Path) -> None:
    """A watcher runs a pass, which ends with a sync and its mark in the log: the event for
    that must not look like another process's write (a pass per pass, forever)."""
    from datetime import datetime

    from talon.passes import Pass
    from talon.repo import open_repo

    root = write_repo(tmp_path, {"schedule/a.yaml": CHAIN})
    repo = open_repo(str(root), {})
    bookkeeping._SAVED.clear()
    Pass(repo.spec, repo.store, datetime.fromisoformat("2026-11-27T05:00:00+00:00")).run()
    Pass(repo.spec, repo.store, datetime.fromisoformat("2026-11-27T06:00:30+00:00")).run()
    assert (root / "state/.talon" / INDEX_LOG).read_text().endswith("\n#\n")
    assert not bookkeeping.written_by_others(repo.store)


def test_a_keeper_that_proc_will_not_show_counts_as_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc mounted with hidepid answers EPERM for another user's process (a fake here: the
    mount option cannot be set in a test): the pass must not fail, and reports the run."""
    from talon.executors import runner

    def refused(pid: int, proc: object = None) -> None:
        raise PermissionError(1, "Operation not permitted")

    me = bookkeeping.whoami()
    other = f"{me.rpartition(':')[0]}:1-1"
    monkeypatch.setattr(runner, "read_proc", refused)
    assert bookkeeping.held_by_the_living(other) is False
    assert bookkeeping.held_by_the_living(me) is False  # (its own lines: never "another")
    assert bookkeeping.held_by_the_living(f"elsewhere:{me.split(':', 1)[1]}") is False


def test_the_log_stays_open_only_while_the_pass_lock_is_held_and_follows_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends under the pass lock reuse one open file; a checkpoint that replaces the log
    (lines carried over) makes the next append go to the new file, not the replaced one."""
    st = FileStore(tmp_path / "state")
    st.ensure()
    log = st.book / INDEX_LOG
    with st.locked(store.PASS_LOCK):
        bookkeeping.journal_fired(st, "p/a/a@1.json", '{"id": "a@1"}', held=True)
        bookkeeping.journal_fired(st, "p/b/b@1.json", '{"id": "b@1"}')
        kept = dict(st._appending)
        assert list(kept) == [str(log)]
        assert os.fstat(kept[str(log)]).st_ino == log.stat().st_ino
        book = fresh_load(st.root)
        book.held_back = lambda: {"p/a/a@1.json": '{"id": "a@1"}'}
        before = log.stat().st_ino
        save(st, book, checkpoint=True)  # carries a@1's line over: a new file
        assert log.stat().st_ino != before and not st._appending
        bookkeeping.journal_fired(st, "p/c/c@1.json", '{"id": "c@1"}')
        assert "p/c/c@1.json" in log.read_text() and "p/a/a@1.json" in log.read_text()
        assert st._appending
    assert not st._appending  # the lock went: nothing kept open
    bookkeeping.journal_fired(st, "p/d/d@1.json", '{"id": "d@1"}')
    assert not st._appending and "p/d/d@1.json" in log.read_text()
