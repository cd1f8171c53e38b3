#!/bin/sh
# Runs Talon's main job on the example repository: validate, then a simulated day of
# reconcile passes (with --now, so the demo is the same whenever it runs), then status.
# The example's state/ is reset first so every demo starts from the same place.
set -eu
repo=${1:-example-repo}
day=${DEMO_DAY:-2026-11-27}
rm -rf "$repo/state"
mkdir -p "$repo/state"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say talon -C "$repo" validate
talon -C "$repo" validate && echo "example-repo is valid"

say talon -C "$repo" plan --now "${day}T05:00:00Z" --until "${day}T23:59:00Z"
talon -C "$repo" plan --now "${day}T05:00:00Z" --until "${day}T23:59:00Z" | head -40

# The first pass starts every job's trigger window; later passes fire what is due.
for t in 05:00 06:00 06:31 07:00 07:16 08:00 09:30 12:00 16:00 17:00 18:30 23:00; do
    say talon -C "$repo" reconcile --wait --now "${day}T${t}:00Z"
    talon -C "$repo" reconcile --wait --now "${day}T${t}:00Z" || true
done

# An external trigger: the one-off ledger migration (period "once"), then the in-process job.
say talon -C "$repo" trigger migrate-ledger --now "${day}T18:00:00Z"
talon -C "$repo" trigger migrate-ledger --now "${day}T18:00:00Z"
say talon -C "$repo" trigger refresh-instruments --now "${day}T18:01:00Z"
talon -C "$repo" trigger refresh-instruments --now "${day}T18:01:00Z"
say talon -C "$repo" reconcile --wait --now "${day}T18:05:00Z"
talon -C "$repo" reconcile --wait --now "${day}T18:05:00Z" || true

say talon -C "$repo" status --now "${day}T23:30:00Z"
talon -C "$repo" status --now "${day}T23:30:00Z"

say talon -C "$repo" resources
talon -C "$repo" resources

say ls "$repo/state/$day"
ls "$repo/state/$day"
