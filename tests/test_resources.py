"""The resource tree and all-or-nothing allocation."""

from __future__ import annotations

from talon.model import ResourceRequest
from talon.resources import Grant, allocate, leaves_of, matches

HOSTS = {
    "compute": {
        "node1": {"type": "big", "capacity": 4, "address": "10.0.0.11"},
        "node2": {"type": "small", "capacity": 2, "address": "10.0.0.12"},
        "node3": {"type": "big", "address": "10.0.0.13"},
    },
    "web": {"front": {"type": "web"}},
}
LEAVES = leaves_of("hosts", HOSTS)


def test_leaves_and_capacity_default() -> None:
    assert [(leaf.path, leaf.capacity) for leaf in LEAVES] == [
        ("hosts/compute/node1", 4),
        ("hosts/compute/node2", 2),
        ("hosts/compute/node3", 1),
        ("hosts/web/front", 1),
    ]
    assert LEAVES[0].attrs == {"type": "big", "address": "10.0.0.11"}


def test_glob_matches_segments() -> None:
    assert matches("hosts/compute/*", "hosts/compute/node1")
    assert not matches("hosts/*", "hosts/compute/node1")
    assert matches("hosts/**", "hosts/compute/node1")
    assert matches("**/front", "hosts/web/front")


def test_allocation_by_type_and_slots() -> None:
    req = ResourceRequest("hosts/compute/*", {"type": "big"}, count=1, slots=3)
    grants = allocate(LEAVES, [req], {})
    assert isinstance(grants, list)
    assert [g.path for g in grants] == ["hosts/compute/node1"]
    # node1 has 1 slot left, node3 only 1 in all: 3 slots are not to be had.
    short = allocate(LEAVES, [req], {"hosts/compute/node1": 2})
    assert (
        short == "waiting for resources: hosts/compute/*, type=big needs 1 with 3 free slot(s), "
        "0 of 2 available"
    )


def test_all_or_nothing() -> None:
    reqs = [
        ResourceRequest("hosts/compute/*", {"type": "big"}, count=2),
        ResourceRequest("hosts/web/*"),
    ]
    assert isinstance(allocate(LEAVES, reqs, {}), list)
    result = allocate(LEAVES, reqs, {"hosts/web/front": 1})
    assert isinstance(result, str), "the second request fails, so nothing is granted"


def test_never_over_capacity() -> None:
    in_use: dict[str, int] = {}
    req = ResourceRequest("hosts/compute/*", count=1, slots=1)
    granted = 0
    while True:
        result = allocate(LEAVES, [req], in_use)
        if isinstance(result, str):
            break
        for g in result:
            assert isinstance(g, Grant)
            in_use[g.path] = in_use.get(g.path, 0) + g.slots
        granted += 1
    assert granted == 4 + 2 + 1
    assert all(in_use[leaf.path] <= leaf.capacity for leaf in LEAVES if leaf.path in in_use)
