#!/bin/bash
# Stop the Grid Engine daemons started by sge-up.sh: a clean qconf shutdown, then by pid file.
# The qmaster takes ~10 s to exit after -km. Idempotent.
set -euo pipefail
export INFRA_NAME=sge
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
SPOOL=/var/spool/gridengine
pids=""
for f in "$SPOOL"/execd/*/execd.pid "$SPOOL/qmaster/qmaster.pid"; do
  p=$(cat "$f" 2>/dev/null || true); alivep "$p" && pids="$pids $p"
done
if [ -z "$pids" ]; then log "already down"; exit 0; fi
qconf -ke all >/dev/null 2>&1 || true
qconf -km >/dev/null 2>&1 || true
any_alive() { local p; for p in $pids; do alivep "$p" && return 0; done; return 1; }
gone() { ! any_alive; }
wait_for 30 "sge daemons to exit" gone || { for p in $pids; do alivep "$p" && kill -9 "$p"; done; }
log "down"
