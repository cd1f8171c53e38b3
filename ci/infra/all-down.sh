#!/bin/bash
# Stop everything all-up.sh started. Idempotent. Packages stay installed.
set -euo pipefail
export INFRA_NAME=all
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root
here=$(dirname "$0")
for s in slurm sge ssh-hosts ssh; do "$here/$s-down.sh"; done
log "all down"
