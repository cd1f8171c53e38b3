"""`${...}` substitution in commands, env and executor fields. Pure.

In a string command every substituted value is shell-quoted, so a parameter `x; rm -rf ~`
arrives as one literal argument; in argv lists and env values it is inserted as is (no shell
will read it).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.\-]+)\}")
_INTEGER = re.compile(r"[+-]?[0-9]+")


class PlaceholderError(ValueError):
    """An unknown placeholder; the message names it and what is known."""


def values_for(
    *,
    job: str,
    run_id: str,
    period: Mapping[str, str],
    params: Mapping[str, Any],
    resources: Sequence[Mapping[str, Any]] = (),
) -> dict[str, str]:
    out = {
        "job.name": job,
        "run.id": run_id,
        "period.key": period["key"],
        "period.start": period["start"],
        "period.end": period["end"],
        "period.type": period["type"],
    }
    for key, value in params.items():
        out[f"params.{key}"] = _text(value)
    for i, grant in enumerate(resources):
        out[f"resources.{i}.path"] = str(grant.get("path", ""))
        out[f"resources.{i}.name"] = str(grant.get("path", "")).rsplit("/", 1)[-1]
        for key, value in (grant.get("attrs") or {}).items():
            out[f"resources.{i}.{key}"] = _text(value)
    return out


def _text(value: Any) -> str:
    """A YAML value as the file spells it: `true`, not Python's `True`; null as nothing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unknown(name: str, values: Mapping[str, str]) -> PlaceholderError:
    known = ", ".join(sorted(k for k in values if not k.startswith(("params.", "resources."))))
    return PlaceholderError(
        f"unknown placeholder ${{{name}}}; known: {known}, params.NAME (those the run has), "
        "resources.N.ATTR (of what it holds)"
    )


def substitute(template: str, values: Mapping[str, str], *, quote: bool) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            raise _unknown(name, values)
        return shlex.quote(values[name]) if quote else values[name]

    return _PLACEHOLDER.sub(one, template)


_FIXED = frozenset(
    {"job.name", "run.id", "period.key", "period.start", "period.end", "period.type"}
)


def unknown_in(template: str, params: Mapping[str, Any] | None, resources: int) -> list[str]:
    """What `substitute` would refuse in every run of a job, said before any runs: names it
    never knows, `${params.X}` for an X the job does not declare (`params` None: runs may bring
    their own, from `talon trigger --param`), `${resources.N...}` beyond the N it requests."""
    out = []
    for m in _PLACEHOLDER.finditer(template):
        name = m.group(1)
        family, _, rest = name.partition(".")
        if name in _FIXED:
            continue
        if family == "params" and rest:
            if params is None or rest in params:
                continue
            out.append(f"unknown placeholder ${{{name}}}: the job's params are {_listed(params)}")
        elif family == "resources" and rest.partition(".")[0].isdigit() and "." in rest:
            index = int(rest.partition(".")[0])
            if index < resources:
                continue
            out.append(
                f"unknown placeholder ${{{name}}}: the job is granted {resources} resource(s),"
                " numbered from 0"
            )
        else:
            known = ", ".join(sorted(_FIXED))
            out.append(
                f"unknown placeholder ${{{name}}}; known: {known}, params.NAME, resources.N.ATTR"
            )
    return out


def _listed(params: Mapping[str, Any]) -> str:
    return ", ".join(sorted(params)) if params else "none"


def substitute_shell(template: str, values: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """A shell command string with its placeholders as quoted parameter expansions, and the
    environment that holds their values (`_TALON_V1`, `_TALON_V2`...).

    Text put into the string would be read by the shell again: `shlex.quote` makes a value
    one literal word where the placeholder stands unquoted, but inside double quotes its
    quotes are literal and a `$(...)` in the value runs. A parameter expansion is never
    read again by this shell. It is written `"${_TALON_V1}"` where the placeholder stands
    unquoted (one word), `${_TALON_V1}` inside double quotes, and `'"${_TALON_V1}"'` inside
    single quotes (which close around it, so the value joins that quoted text literally). A
    placeholder inside a `$(...)` within double quotes is taken as quoted: its value may be
    split into words there, but is never run. Inside `$(( ))` the value must be an integer:
    bash (a common /bin/sh elsewhere) evaluates a variable's text there as an expression.

    What a program does with the text it is given is its own: single-quoted text handed to
    another shell (`sh -c '... ${params.x}'`, `ssh host '...'`) is read by that shell, value
    included. Such a script should read the value from its environment (`TALON_PARAMS`)."""
    env: dict[str, str] = {}
    names: dict[str, str] = {}
    out: list[str] = []
    state = ""  # "" outside quotes, "'" or '"' inside them
    arith = 0  # how deep inside $(( )): bash evaluates a variable's text there, `a[$(cmd)]` too
    i, n = 0, len(template)
    while i < n:
        if state != "'" and template.startswith("$((", i):
            arith += 1
            out.append("$((")
            i += 3
            continue
        if arith and template.startswith("))", i):
            arith -= 1
            out.append("))")
            i += 2
            continue
        m = _PLACEHOLDER.match(template, i)
        if m is not None:
            name = m.group(1)
            if name not in values:
                raise _unknown(name, values)
            if arith:
                if not _INTEGER.fullmatch(values[name]):
                    raise PlaceholderError(
                        f"${{{name}}} stands in an arithmetic expansion $(( )), and its value "
                        f"{values[name]!r} is not an integer"
                    )
                out.append(values[name])  # (digits: nothing a shell could run)
                i = m.end()
                continue
            var = names.get(name)
            if var is None:
                var = names[name] = f"_TALON_V{len(names) + 1}"
                env[var] = values[name]
            if state == '"':
                out.append(f"${{{var}}}")  # (quoted already)
            else:
                expansion = f'"${{{var}}}"'
                out.append(f"'{expansion}'" if state == "'" else expansion)
            i = m.end()
            continue
        c = template[i]
        if c == "\\" and state != "'" and i + 1 < n:
            out.append(template[i : i + 2])  # an escaped character: no quote starts or ends
            i += 2
            continue
        if c in "'\"" and state in ("", c):
            state = "" if state == c else c
        out.append(c)
        i += 1
    return "".join(out), env
