"""The resource tree and all-or-nothing allocation. Pure: no I/O.

Leaves come from `resources/*.yaml` (each file's stem is a top-level namespace). What is in
use is derived from the runs that hold slots, so the run files stay the single truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from talon.model import ResourceLeaf, ResourceRequest


def leaves_of(namespace: str, tree: Mapping[str, Any]) -> list[ResourceLeaf]:
    """Flatten one resource file. A leaf is a mapping none of whose values is a mapping."""
    out: list[ResourceLeaf] = []
    stack: list[tuple[str, Mapping[str, Any]]] = [(namespace, tree)]
    while stack:
        path, node = stack.pop()
        children = {k: v for k, v in node.items() if isinstance(v, Mapping)}
        if children:
            for key in sorted(children, reverse=True):
                stack.append((f"{path}/{key}", children[key]))
            continue
        if path == namespace:
            continue  # an empty or scalar-only file holds no leaves
        attrs = dict(node)
        out.append(ResourceLeaf(path, _capacity(attrs.pop("capacity", 1)), attrs))
    return out


def _capacity(value: Any) -> int:
    """A whole number of slots; anything else (two, null, 1.5, a list) counts as the default 1:
    the resources schema reports it at its place, and the leaf stays selectable meanwhile so
    jobs that use it are not reported too."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def _segments_match(pattern: Sequence[str], path: Sequence[str]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_segments_match(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatchcase(path[0], head) and _segments_match(rest, path[1:])


def matches(select: str, leaf_path: str) -> bool:
    """Glob over path segments: `*` within one segment, `**` across any number."""
    return _segments_match(select.strip("/").split("/"), leaf_path.split("/"))


def candidates(leaves: Iterable[ResourceLeaf], req: ResourceRequest) -> list[ResourceLeaf]:
    """Leaves a request may use, in tree order: selector and every `where` attribute match."""
    out = []
    for leaf in leaves:
        if not matches(req.select, leaf.path):
            continue
        if all(leaf.attrs.get(k) == v for k, v in req.where.items()):
            out.append(leaf)
    return out


@dataclass(frozen=True)
class Grant:
    """One leaf held by a run: recorded in its run file."""

    path: str
    slots: int
    attrs: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "slots": self.slots, **{"attrs": dict(self.attrs)}}


def allocate(
    leaves: Sequence[ResourceLeaf],
    requests: Sequence[ResourceRequest],
    in_use: Mapping[str, int],
) -> list[Grant] | str:
    """All requests granted, or a sentence saying what is short. Never exceeds a capacity.

    Each request takes `count` distinct leaves with `slots` free; leaves are filled in tree
    order so that allocation is predictable (the same inputs always give the same hosts).
    """
    used = dict(in_use)
    grants: list[Grant] = []
    for req in requests:
        pool = candidates(leaves, req)
        taken = [leaf for leaf in pool if leaf.capacity - used.get(leaf.path, 0) >= req.slots][
            : req.count
        ]
        if len(taken) < req.count:
            free = sum(1 for leaf in pool if leaf.capacity - used.get(leaf.path, 0) >= req.slots)
            where = "".join(f", {k}={v}" for k, v in req.where.items())
            return (
                f"waiting for resources: {req.select}{where} needs {req.count} with "
                f"{req.slots} free slot(s), {free} of {len(pool)} available"
            )
        for leaf in taken:
            used[leaf.path] = used.get(leaf.path, 0) + req.slots
            grants.append(Grant(leaf.path, req.slots, leaf.attrs))
    return grants
