"""Placeholders: quoted in string commands, literal elsewhere, unknown names refused."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from talon.placeholders import PlaceholderError, substitute, values_for

VALUES = values_for(
    job="extract",
    run_id="extract@20261127T063000Z",
    period={
        "type": "daily",
        "key": "2026-11-27",
        "start": "2026-11-27T00:00:00+00:00",
        "end": "2026-11-28T00:00:00+00:00",
    },
    params={"region": "x; touch pwned", "quote": 'it\'s "here" $(id)'},
    resources=[{"path": "hosts/compute/node1", "slots": 1, "attrs": {"address": "10.0.0.11"}}],
)


def test_string_command_values_are_one_literal_argument(tmp_path: object) -> None:
    cmd = substitute(
        "printf '%s\\n' ${params.region} ${params.quote} ${period.key}", VALUES, quote=True
    )
    out = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["x; touch pwned", 'it\'s "here" $(id)', "2026-11-27"]


def test_argv_and_env_are_literal() -> None:
    assert substitute("${params.region}", VALUES, quote=False) == "x; touch pwned"
    assert substitute("host=${resources.0.address}", VALUES, quote=False) == "host=10.0.0.11"
    assert substitute("${resources.0.name}", VALUES, quote=False) == "node1"


def test_unknown_placeholder() -> None:
    with pytest.raises(PlaceholderError, match=r"unknown placeholder \$\{params.nope\}"):
        substitute("echo ${params.nope}", VALUES, quote=True)


def test_quoting_round_trips() -> None:
    quoted = substitute("${params.quote}", VALUES, quote=True)
    assert shlex.split(quoted) == ['it\'s "here" $(id)']
