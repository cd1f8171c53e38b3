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
