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
        out[f"params.{key}"] = "" if value is None else str(value)
    for i, grant in enumerate(resources):
        out[f"resources.{i}.path"] = str(grant.get("path", ""))
        out[f"resources.{i}.name"] = str(grant.get("path", "")).rsplit("/", 1)[-1]
        for key, value in (grant.get("attrs") or {}).items():
            out[f"resources.{i}.{key}"] = str(value)
    return out


def substitute(template: str, values: Mapping[str, str], *, quote: bool) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            known = ", ".join(sorted(k for k in values if not k.startswith("resources.")))
            raise PlaceholderError(f"unknown placeholder ${{{name}}}; known: {known}")
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
