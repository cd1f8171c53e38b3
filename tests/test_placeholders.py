"""Placeholders: quoted in string commands, literal elsewhere, unknown names refused."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from talon.placeholders import PlaceholderError, substitute, substitute_shell, values_for

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


HOSTILE = "$(touch PWNED) `touch PWNED` a  b;\"q\"'s'\\"


@pytest.mark.parametrize(
    "template",
    [
        'printf "[%s]" ${params.x}',  # unquoted: one word
        'printf "[%s]" "${params.x}"',  # inside double quotes, where shlex.quote was no use
        "printf '[%s]' '${params.x}'",  # inside single quotes
        'printf "[%s]" "a\\"${params.x}"',  # after an escaped quote
    ],
)
def test_a_value_reaches_the_shell_as_itself_in_every_context(
    template: str, tmp_path: Path
) -> None:
    import os

    command, env = substitute_shell(template, {"params.x": HOSTILE})
    assert HOSTILE not in command  # the value is not in the text the shell reads
    out = subprocess.run(
        ["/bin/sh", "-c", command],
        env={**os.environ, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    prefix = 'a"' if 'a\\"' in template else ""
    assert out == f"[{prefix}{HOSTILE}]"
    assert not (tmp_path / "PWNED").exists()


def test_a_value_used_twice_is_one_variable() -> None:
    command, env = substitute_shell(
        "echo ${params.x} ${job.name} ${params.x}", {"params.x": "1", "job.name": "j"}
    )
    assert command == 'echo "${_TALON_V1}" "${_TALON_V2}" "${_TALON_V1}"'
    assert env == {"_TALON_V1": "1", "_TALON_V2": "j"}
    with pytest.raises(PlaceholderError, match=r"\$\{params.y\}"):
        substitute_shell("echo ${params.y}", {"params.x": "1"})


def test_inside_arithmetic_only_an_integer_is_put() -> None:
    # bash evaluates a variable's text inside $(( )): `a[$(touch P)]` ran there.
    command, env = substitute_shell('echo "$(( ${params.n} + 1 ))" ${params.n}', {"params.n": "41"})
    assert command == 'echo "$(( 41 + 1 ))" "${_TALON_V1}"' and env == {"_TALON_V1": "41"}
    with pytest.raises(PlaceholderError, match="not an integer"):
        substitute_shell("echo $(( ${params.n} + 1 ))", {"params.n": "a[$(touch P)]"})


def test_yaml_values_are_spelled_as_the_file_spells_them() -> None:
    period = {"key": "2026-11-27", "start": "s", "end": "e", "type": "daily"}
    values = values_for(
        job="j",
        run_id="r1",
        period=period,
        params={"on": True, "off": False, "none": None, "n": 3},
        resources=[{"path": "h/n1", "attrs": {"gpu": True, "port": 80}}],
    )
    assert [values[f"params.{k}"] for k in ("on", "off", "none", "n")] == ["true", "false", "", "3"]
    assert (values["resources.0.gpu"], values["resources.0.port"]) == ("true", "80")


def test_an_unknown_placeholder_names_what_is_known() -> None:
    period = {"key": "2026-11-27", "start": "s", "end": "e", "type": "daily"}
    with pytest.raises(PlaceholderError) as info:
        values = values_for(job="j", run_id="r1", period=period, params={})
        substitute("${nope}", values, quote=True)
    assert "params.NAME" in str(info.value) and "resources.N.ATTR" in str(info.value)
