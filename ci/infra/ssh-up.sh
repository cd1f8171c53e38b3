#!/bin/bash
# An sshd on loopback for the ssh executor tests: 127.0.0.1:${TALON_SSH_PORT:-2222}, login user
# talon-test with the key $TALON_INFRA_DIR/ssh/client, host key pinned in $TALON_INFRA_DIR/ssh/known_hosts.
# Idempotent: a no-op (well under a second) when it is already up.
set -euo pipefail
export INFRA_NAME=ssh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root
ADDR=127.0.0.1; PORT=${TALON_SSH_PORT:-2222}; NAME=lo

if alive_pidfile "$SSH_DIR/$NAME.pid" && ssh_banner "$ADDR" "$PORT" && [ -s "$SSH_DIR/known_hosts" ]; then
  log "already up on $ADDR:$PORT"; exit 0
fi
ssh_common_setup
ssh_config "$NAME" "$ADDR" "$PORT"
ssh_write_known_hosts
if ! alive_pidfile "$SSH_DIR/$NAME.pid"; then
  /usr/sbin/sshd -t -f "$SSH_DIR/$NAME.conf" || die "sshd rejects $SSH_DIR/$NAME.conf"
  /usr/sbin/sshd -f "$SSH_DIR/$NAME.conf" -E "$SSH_DIR/$NAME.log"   # daemonizes, writes $NAME.pid
fi
wait_for 10 "sshd banner on $ADDR:$PORT" ssh_banner "$ADDR" "$PORT"
# a port squatter would answer the banner too: our own sshd must be the one alive
alive_pidfile "$SSH_DIR/$NAME.pid" || { tail -n 3 "$SSH_DIR/$NAME.log" >&2; die "sshd did not stay up"; }
log "up on $ADDR:$PORT (user $SSH_USER, key $SSH_DIR/client, known_hosts $SSH_DIR/known_hosts)"
