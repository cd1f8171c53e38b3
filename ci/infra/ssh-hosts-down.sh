#!/bin/bash
# Undo ssh-hosts-up.sh: stop every process inside our namespaces (sshd and what it started),
# delete the namespaces (and with them the veth pairs) and the bridge. Idempotent.
set -euo pipefail
export INFRA_NAME=ssh-hosts
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root
N=${TALON_SSH_HOSTS:-3}
for i in $(seq 1 "$N"); do
  ns=talon-h$i
  if output_has -qw "$ns" ip netns list; then
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
    [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
    ip netns del "$ns"
  fi
  rm -f "$SSH_DIR/h$i.pid" "$SSH_DIR/h$i.addr"
done
ip link del br-talon 2>/dev/null || true
[ -d "$SSH_DIR" ] && ssh_write_known_hosts
log "down"
