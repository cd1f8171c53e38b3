#!/bin/bash
# Three "hosts" for the multi-host ssh tests: network namespaces talon-h1..3, each with its own
# hostname (h1..h3), an address 10.200.0.11-13 on bridge br-talon (10.200.0.1 on this side) and an
# sshd on port 22. Same user, client key and known_hosts as ssh-up.sh.
# Tests cut a host off with `ip link set veth-hN down`; this script always brings the links back up.
# Idempotent; reuses namespaces, bridge and veths left behind by a crash.
set -euo pipefail
export INFRA_NAME=ssh-hosts
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root
N=${TALON_SSH_HOSTS:-3}; NET=10.200.0; BR=br-talon

host_up() {   # host_up I: sshd alive, link up, banner answers
  local i=$1
  alive_pidfile "$SSH_DIR/h$i.pid" && [ "$(cat /sys/class/net/veth-h"$i"/operstate 2>/dev/null)" = up ] \
    && ssh_banner "$NET.$((10 + i))" 22
}
all_up=1
for i in $(seq 1 "$N"); do host_up "$i" || { all_up=0; break; }; done
if [ $all_up = 1 ] && [ -s "$SSH_DIR/known_hosts" ]; then log "already up: $NET.11-$((10 + N))"; exit 0; fi

ssh_common_setup
ip link show "$BR" >/dev/null 2>&1 || ip link add "$BR" type bridge
output_has -q "inet $NET.1/24" ip addr show dev "$BR" || ip addr add "$NET.1/24" dev "$BR"
ip link set "$BR" up
for i in $(seq 1 "$N"); do
  ns=talon-h$i; addr=$NET.$((10 + i))
  output_has -qw "$ns" ip netns list || ip netns add "$ns"
  if ! ip link show "veth-h$i" >/dev/null 2>&1; then
    ip link add "veth-h$i" type veth peer name eth0 netns "$ns"
    ip -n "$ns" addr add "$addr/24" dev eth0
  fi
  ip link set "veth-h$i" master "$BR" up
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ssh_config "h$i" "$addr" 22
  if ! alive_pidfile "$SSH_DIR/h$i.pid"; then
    # unshare --uts gives the host its own name; sshd daemonizes and writes h$i.pid
    ip netns exec "$ns" unshare --uts sh -c \
      "hostname h$i && exec /usr/sbin/sshd -f '$SSH_DIR/h$i.conf' -E '$SSH_DIR/h$i.log'"
  fi
done
ssh_write_known_hosts
for i in $(seq 1 "$N"); do
  wait_for 10 "sshd on h$i" ssh_banner "$NET.$((10 + i))" 22
  alive_pidfile "$SSH_DIR/h$i.pid" || { tail -n 3 "$SSH_DIR/h$i.log" >&2; die "sshd on h$i did not stay up"; }
done
log "up: $(for i in $(seq 1 "$N"); do printf 'h%s=%s ' "$i" "$NET.$((10 + i))"; done)"
