#!/bin/bash
# Everything the integration tests need: loopback sshd, three ssh hosts in namespaces, Grid Engine,
# Slurm. Installs all missing packages in one apt run, then starts each service. Idempotent.
set -euo pipefail
export INFRA_NAME=all
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root
here=$(dirname "$0")
sge_preseed
install_packages "${SSH_PACKAGES[@]}" "${SGE_PACKAGES[@]}" "${SLURM_PACKAGES[@]}"
for s in ssh ssh-hosts sge slurm; do "$here/$s-up.sh"; done
log "all up"
