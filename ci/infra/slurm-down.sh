#!/bin/bash
# Stop what slurm-up.sh started (slurmctld, slurmd, munged), by pid file only. Idempotent.
set -euo pipefail
export INFRA_NAME=slurm
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root
pids=""
for f in /run/slurmctld.pid /run/slurmd.pid /run/munge/munged.pid; do
  p=$(cat "$f" 2>/dev/null || true); alivep "$p" && pids="$pids $p"
done
if [ -n "$pids" ]; then
  scontrol shutdown >/dev/null 2>&1 || true          # stops slurmctld and slurmd (~2 s)
  p=$(cat /run/munge/munged.pid 2>/dev/null || true); alivep "$p" && kill "$p"
  gone() { local p; for p in $pids; do alivep "$p" && return 1; done; return 0; }
  wait_for 20 "slurm daemons to exit" gone || { for p in $pids; do alivep "$p" && kill -9 "$p"; done; }
fi
# slurmctld leaves a stale pid file behind, which breaks the package's prerm (apt-get purge aborts)
rm -f /run/slurmctld.pid /run/slurmd.pid
log "down"
