"""`talon resources`: every leaf of the tree with its capacity, holders and waiters."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

from talon import bookkeeping
from talon.cli import EXIT_OK, parse_now
from talon.output import emit_json, table
from talon.repo import Repo, open_repo
from talon.resources import candidates
from talon.runs import State


def tree(repo: Repo) -> list[dict[str, Any]]:
    open_runs = bookkeeping.read_open(repo.store, bookkeeping.load(repo.store))
    rows = []
    for leaf in repo.spec.resources:
        holders: list[dict[str, Any]] = [
            {"run": r.id, "slots": int(g.get("slots", 1))}
            for r in open_runs
            if r.state is State.RUNNING
            for g in r.resources
            if g.get("path") == leaf.path
        ]
        waiters = []
        for r in open_runs:
            job = repo.spec.jobs.get(r.job)
            if (
                r.state is not State.READY
                or job is None
                or not (r.reason or "").startswith("waiting for resources")
            ):
                continue
            if any(leaf in candidates(repo.spec.resources, req) for req in job.resources):
                waiters.append(r.id)
        rows.append(
            {
                "path": leaf.path,
                "capacity": leaf.capacity,
                "in_use": sum(h["slots"] for h in holders),
                "holders": holders,
                "waiting": waiters,
                "attrs": dict(leaf.attrs),
            }
        )
    return rows


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    parse_now(args.now)  # (nothing here depends on the clock; a bad --now is still refused)
    repo = open_repo(args.directory, environ, readonly=True, partial=True)
    rows = tree(repo)
    if args.json:
        emit_json(rows)
        return EXIT_OK
    table(
        ["RESOURCE", "USED", "HOLDERS", "WAITING", "ATTRIBUTES"],
        [
            [
                r["path"],
                f"{r['in_use']}/{r['capacity']}",
                ", ".join(h["run"] for h in r["holders"]) or "-",
                ", ".join(r["waiting"]) or "-",
                " ".join(f"{k}={v}" for k, v in r["attrs"].items()),
            ]
            for r in rows
        ],
    )
    return EXIT_OK
