#!/bin/bash
# Stop the loopback sshd started by ssh-up.sh (by its pid file only). Idempotent.
set -euo pipefail
export INFRA_NAME=ssh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root
pid=$(cat "$SSH_DIR/lo.pid" 2>/dev/null || true)
if alivep "$pid"; then
  kill "$pid"
  wait_for 5 "sshd $pid to exit" bash -c "! grep -qs '^State:[[:space:]]*[^Z]' /proc/$pid/status"
fi
rm -f "$SSH_DIR/lo.pid"
log "down"
