#!/bin/bash
# Single-node Grid Engine (Debian's Son of Grid Engine 8.1.9) on this host, queue all.q.
# Idempotent: a no-op when already up; restarts daemons after a crash (stale pid files, zombies).
# Pitfalls handled (see docs/executors.md): host_aliases (127.0.0.1 reverse-resolves to "localhost"),
# min_uid/min_gid 0, login_shells none (jobs must not source ~/.profile), 1 s scheduling and accounting
# flush (qacct lags a finished job by ~1 s instead of 15 s), no load thresholds on a busy CI box.
set -euo pipefail
export INFRA_NAME=sge
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
H=$(hostname); Q=all.q; SPOOL=/var/spool/gridengine; COMMON=$SGE_ROOT/$SGE_CELL/common

execd_pidfile() { local f; for f in "$SPOOL"/execd/*/execd.pid; do echo "$f"; return; done; }  # dir: "localhost"
# ready = the queue instance reports a load value and carries no state flag ("au": execd not reporting)
queue_ready() {
  qstat -f -q "$Q@$H" 2>/dev/null | awk -v q="$Q@$H" '$1 == q && $4 != "-NA-" && $6 == "" {ok = 1} END {exit !ok}'
}
configured() {
  output_has -q '^login_shells *none$' qconf -sconf global && output_has -q "^hostlist *$H$" qconf -sq "$Q"
}
if command -v qstat >/dev/null && queue_ready && configured; then log "already up (queue $Q@$H)"; exit 0; fi

getent hosts "$H" >/dev/null || echo "127.0.0.1 $H" >> /etc/hosts
sge_preseed
install_packages "${SGE_PACKAGES[@]}"
# Clients call themselves $H, the qmaster sees 127.0.0.1 as "localhost": make them one host.
echo "$H localhost" > "$COMMON/host_aliases"; echo "$H" > "$COMMON/act_qmaster"
chown sgeadmin:sgeadmin "$COMMON/host_aliases" "$COMMON/act_qmaster"

if ! qstat >/dev/null 2>&1; then
  log "starting sge_qmaster"
  /usr/sbin/sge_qmaster                          # daemonizes as sgeadmin
  wait_for 30 "qmaster to answer" qstat
fi

if ! configured; then
  log "configuring"
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  # qconf -m*/-a* open $EDITOR on a temp file: a sed script as the editor configures without prompts
  qedit() {
    # shellcheck disable=SC2016 # "$1" is for the editor script
    printf '#!/bin/sh\nexec sed -i %s "$1"\n' "$1" > "$W/ed"; chmod +x "$W/ed"; shift
    local out; out=$(EDITOR=$W/ed qconf "$@" 2>&1) || die "qconf $*: $out"
  }
  qedit "-e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' -e 's/^login_shells .*/login_shells none/' \
    -e 's/flush_time=[0-9:]*/flush_time=00:00:01/' -e 's/^load_report_time .*/load_report_time 00:00:05/'" -mconf global
  qedit "-e 's/^schedule_interval .*/schedule_interval 0:0:1/' -e 's/^flush_submit_sec .*/flush_submit_sec 1/' \
    -e 's/^flush_finish_sec .*/flush_finish_sec 1/'" -msconf
  output_has -qx "$H" qconf -sel || qedit "-e 's/^hostname .*/hostname $H/'" -ae
  output_has -qx "$H" qconf -ss || qconf -as "$H" >/dev/null 2>&1
  QSED="-e 's/^hostlist .*/hostlist $H/' -e 's/^load_thresholds .*/load_thresholds NONE/' \
    -e 's/^pe_list .*/pe_list NONE/' -e 's/^slots .*/slots 4/' -e 's|^shell .*|shell /bin/sh|'"
  if qconf -sq "$Q" >/dev/null 2>&1; then qedit "$QSED" -mq "$Q"; else qedit "$QSED" -aq "$Q"; fi
  configured || die "configuration did not take (qconf -sconf global; qconf -sq $Q)"
fi

if ! alive_pidfile "$(execd_pidfile)"; then
  log "starting sge_execd"
  /usr/sbin/sge_execd
fi
wait_for 60 "queue $Q@$H to be ready" queue_ready || { qstat -f >&2; die "exec host not up"; }
log "up (queue $Q@$H)"
