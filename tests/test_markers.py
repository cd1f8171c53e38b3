"""Marker lines in a run's log (talon.markers): the file scanner must find exactly what reading
the log as text line by line finds, however the output around the markers looks."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from talon.markers import PREFIX, format_marker, markers_in_file, parse_markers

PROGRESS = format_marker("progress", {"kind": "percent", "percent": 40})
ARTIFACT = format_marker("artifact", {"url": "https://x/é", "name": "r"})


def as_text(path: Path) -> list[tuple[str, dict[str, object]]]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return list(parse_markers(fh))


@pytest.mark.parametrize(
    "content",
    [
        b"",
        f"{PROGRESS}\n".encode(),
        f"{PROGRESS}".encode(),  # no newline at the end
        f"out\n{PROGRESS}\nmore\n{ARTIFACT}\n".encode(),
        f"bar 10%\rbar 20%\r{PROGRESS}\r\n".encode(),  # carriage returns of a progress bar
        f"x {PROGRESS}\n".encode(),  # not at the start of a line: not a marker
        f"{PREFIX}{{not json\n{PREFIX}\n".encode(),
        b"\xff\xfe broken utf-8\n" + f"{ARTIFACT}\n".encode() + b"\xc3\n",
        (PREFIX + '{"progress": {"note": "\xff"}}\n').encode("latin-1"),  # replaced, as in text
        f"{PROGRESS}\r{ARTIFACT}\n{PROGRESS}".encode(),
    ],
)
def test_the_file_scanner_finds_what_a_text_reading_finds(tmp_path: Path, content: bytes) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(content)
    assert list(markers_in_file(log)) == as_text(log)


def test_random_output_around_markers(tmp_path: Path) -> None:
    rng = random.Random(14)
    pieces = [b"\n", b"\r", b"\r\n", b"text", b" ", b"\xff", PROGRESS.encode(), ARTIFACT.encode()]
    pieces.append(PREFIX.encode())
    for i in range(300):
        log = tmp_path / f"{i}.log"
        log.write_bytes(b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 40))))
        assert list(markers_in_file(log)) == as_text(log), log.read_bytes()


def test_a_large_log_is_scanned_without_reading_it_line_by_line(tmp_path: Path) -> None:
    """64 MB of output with two markers: what the pass collecting the run's end reads."""
    log = tmp_path / "big.log"
    line = b"x" * 127 + b"\n"
    with log.open("wb") as fh:
        fh.write(f"{PROGRESS}\n".encode())
        for _ in range(8):
            fh.write(line * 65536)
        fh.write(f"{ARTIFACT}\n".encode())
    found = list(markers_in_file(log))
    assert [kind for kind, _ in found] == ["progress", "artifact"]
