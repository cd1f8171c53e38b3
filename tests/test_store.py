"""The file store: atomic writes, exclusive creation, locking, damaged files moved aside."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from talon.runs import FIELD_ORDER, Run, State, dumps
from talon.store import CorruptRun, FileStore, StoreError, create_exclusive, run_id_for

NOW = datetime(2026, 11, 27, 6, 30, tzinfo=UTC)


def a_run(run_id: str = "extract@20261127T063000Z", state: State = State.BLOCKED) -> Run:
    return Run(
        id=run_id,
        job="extract",
        state=state,
        period={
            "type": "daily",
            "key": "2026-11-27",
            "start": "2026-11-27T00:00:00+00:00",
            "end": "2026-11-28T00:00:00+00:00",
        },
        trigger={"type": "cron", "at": NOW.isoformat()},
        created=NOW.isoformat(),
    )


def test_run_file_layout_and_key_order(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    assert store.create(a_run())
    path = tmp_path / "state" / "2026-11-27" / "extract" / "extract@20261127T063000Z.json"
    text = path.read_text()
    assert list(json.loads(text)) == list(FIELD_ORDER)
    assert '\n  "state": "blocked",\n' in text  # one top-level scalar a line: grep works
    mode = stat.S_IMODE(path.stat().st_mode)
    assert not mode & stat.S_IWOTH, "state files are not world-writable"
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temp files left behind"


def test_create_is_exclusive(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    assert store.create(a_run())
    assert not store.create(replace(a_run(), reason="second"))
    assert store.read(store.path_of(a_run())).reason is None


def _racer(path: str, n: int, q: multiprocessing.Queue[bool]) -> None:
    q.put(create_exclusive(Path(path), f"writer {n}\n") is not None)


def test_exclusive_creation_across_processes(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    q: multiprocessing.Queue[bool] = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_racer, args=(str(target), i, q)) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    results = [q.get() for _ in procs]
    assert results.count(True) == 1
    assert target.read_text().startswith("writer ")


def _bump(path: str, times: int) -> None:
    store = FileStore(Path(path).parents[2])
    for _ in range(times):
        store.update(Path(path), lambda r: replace(r, attempt=r.attempt + 1))


def test_updates_under_lock_are_never_lost(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    store.ensure()
    store.create(a_run())
    path = store.path_of(a_run())
    procs = [multiprocessing.Process(target=_bump, args=(str(path), 25)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert store.read(path).attempt == 1 + 4 * 25


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("", "empty file"),
        ('{"id": "x", "job": "extract", "sta', "JSONDecodeError"),
        (
            '{"id": "x", "job": "extract", "state": "exploded", "period": {}, "created": "x"}',
            "period.type",
        ),
        (json.dumps({**json.loads(dumps(a_run())), "state": "done"}), "not one of"),
        (json.dumps({**json.loads(dumps(a_run())), "attempt": "2"}), "'attempt' should be int"),
        ("[1, 2]", "top level is not an object"),
    ],
)
def test_damaged_file_is_moved_aside(tmp_path: Path, content: str, why: str) -> None:
    store = FileStore(tmp_path / "state")
    store.create(a_run())
    path = store.path_of(a_run())
    path.write_text(content)
    with pytest.raises(CorruptRun) as info:
        store.read(path)
    assert why in str(info.value)
    assert str(path) in str(info.value)
    assert not path.exists()
    moved = list(path.parent.glob("*.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_text() == content, "nothing is lost"


def test_listing_skips_damaged_and_foreign_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    store.create(a_run())
    other = a_run("extract@20261127T073000Z")
    store.create(other)
    d = store.run_dir("2026-11-27", "extract")
    (d / ".DS_Store").write_bytes(b"\0\1")
    (d / ".extract@20261127T063000Z.json.swp").write_text("vim")
    store.path_of(other).write_text("{broken")
    seen: list[CorruptRun] = []
    runs = store.runs_in("2026-11-27", "extract", on_corrupt=seen.append)
    assert [r.id for r in runs] == ["extract@20261127T063000Z"]
    assert len(seen) == 1


def test_find_by_id_and_path(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    store.create(a_run())
    path = store.path_of(a_run())
    assert store.find("extract@20261127T063000Z") == path
    assert store.find(str(path)) == path
    with pytest.raises(StoreError):
        store.find("extract@20991231T000000Z")
    with pytest.raises(StoreError):
        store.find("../../etc/passwd")


def test_run_ids_derive_from_the_trigger_instant() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 11, 27, 7, 30, tzinfo=ZoneInfo("Europe/Paris"))
    assert run_id_for("extract", local) == "extract@20261127T063000Z"
    assert run_id_for("extract", local, ".r2") == "extract@20261127T063000Z.r2"


def test_unknown_fields_survive_a_rewrite(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    store.create(a_run())
    path = store.path_of(a_run())
    data = json.loads(path.read_text())
    data["owner_note"] = "kept"
    path.write_text(json.dumps(data))
    store.update(path, lambda r: r.transition(State.READY, NOW, None))
    assert json.loads(path.read_text())["owner_note"] == "kept"


def test_dumps_is_stable() -> None:
    assert dumps(a_run()) == dumps(a_run())
    assert dumps(a_run()).endswith("}\n")


def test_write_never_leaves_partial_file_on_crash(tmp_path: Path) -> None:
    """A writer killed mid-write leaves the old file intact (the rename never happened)."""
    store = FileStore(tmp_path / "state")
    store.create(a_run())
    path = store.path_of(a_run())
    before = path.read_text()
    pid = os.fork()
    if pid == 0:  # child: start a write and die before the rename
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text('{"half": ')
        os._exit(0)
    os.waitpid(pid, 0)
    assert path.read_text() == before
    assert store.read(path).state is State.BLOCKED
