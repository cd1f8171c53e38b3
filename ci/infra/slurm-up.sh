#!/bin/bash
# Single-node Slurm (Debian's 22.05) on this host: munged, slurmctld, slurmd, partition "debug".
# No slurmdbd: exit codes come from `scontrol show job` (kept for MinJobAge=3600 s) and `sacct -c`
# (the jobcomp file). Idempotent: a no-op when already up; a changed slurm.conf restarts the daemons.
set -euo pipefail
export INFRA_NAME=slurm
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root
H=$(hostname -s)   # NodeName must equal `hostname -s`
CONF=/etc/slurm/slurm.conf

# a dead munged makes the munge client retry for seconds: look at the pid first
munge_ok() { alive_pidfile /run/munge/munged.pid && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
node_idle() { [ "$(sinfo -h -N -o %T 2>/dev/null)" = idle ]; }   # "idle*" = slurmd not responding
node_usable() { sinfo -h -N -o %T 2>/dev/null | grep -Eqx 'idle|mixed|allocated|completing'; }

want_conf() {
  cat <<CONF
# Written by talon ci/infra/slurm-up.sh
ClusterName=talon
SlurmctldHost=$H
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# no cgroup delegation on CI machines: track processes by parentage
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# keep finished jobs in scontrol for an hour: the exit code source without slurmdbd
MinJobAge=3600
KillWait=5
NodeName=$H NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

if command -v sinfo >/dev/null && munge_ok && alive_pidfile /run/slurmctld.pid && alive_pidfile /run/slurmd.pid \
   && want_conf | cmp -s - "$CONF" && node_usable; then
  log "already up (node $H)"; exit 0
fi

install_packages "${SLURM_PACKAGES[@]}"
mkdir -p /run/munge; chmod 755 /run/munge; chown munge:munge /run/munge   # /run is a tmpfs: gone after a reboot
if ! munge_ok; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 "munge" munge_ok
fi

if ! want_conf | cmp -s - "$CONF"; then
  want_conf > "$CONF.new"; mv -f "$CONF.new" "$CONF"
  if alive_pidfile /run/slurmctld.pid || alive_pidfile /run/slurmd.pid; then
    log "slurm.conf changed: restarting the daemons"
    c=$(cat /run/slurmctld.pid 2>/dev/null || true); d=$(cat /run/slurmd.pid 2>/dev/null || true)
    scontrol shutdown >/dev/null 2>&1 || true
    down() { ! alivep "$c" && ! alivep "$d"; }
    wait_for 20 "slurm daemons to stop" down
  fi
fi
mkdir -p /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
chown slurm:slurm /var/lib/slurm/slurmctld /var/log/slurm
if ! alive_pidfile /run/slurmctld.pid; then log "starting slurmctld"; /usr/sbin/slurmctld; fi
if ! alive_pidfile /run/slurmd.pid; then log "starting slurmd"; /usr/sbin/slurmd; fi
wait_for 60 "node $H to be idle" node_usable || { sinfo -N -l >&2; die "node not up"; }
log "up (node $H, partition debug)"
