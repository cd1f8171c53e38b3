"""`talon show RUN`: one run in full (its file, as stored)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping

from talon.bookkeeping import find_run
from talon.cli import EXIT_OK, UsageError
from talon.repo import open_repo_store
from talon.store import StoreError


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    store = open_repo_store(args.directory, environ)
    try:
        path, found, logged = find_run(store, args.run)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    data = found.to_json()
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(
        f"file: {path}"
        + (" (not written yet: as state/.talon/index.log holds it)" if logged else "")
    )
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            if not value:
                print(f"{key}: {'{}' if isinstance(value, dict) else '[]'}")
                continue
            print(f"{key}:")
            for line in json.dumps(value, indent=2, ensure_ascii=False).splitlines():
                print(f"  {line}")
        else:
            print(f"{key}: {'' if value is None else value}")
    return EXIT_OK
