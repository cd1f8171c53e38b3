# Shared helpers for the ci/infra scripts; sourced, never run. Bash only.
# shellcheck shell=bash
# Everything the scripts create that is not a system package lives under $TALON_INFRA_DIR.

TALON_INFRA_DIR=${TALON_INFRA_DIR:-/var/tmp/talon-infra}
export DEBIAN_FRONTEND=noninteractive

_t0=$(date +%s%N)
# Under pipefail, `cmd | grep -q` fails at random when grep exits early and cmd gets SIGPIPE:
# match against captured output instead. usage: output_has GREP_FLAGS PATTERN CMD...
output_has() { local flags=$1 pattern=$2 out; shift 2; out=$("$@" 2>/dev/null) || true; grep "$flags" -- "$pattern" <<< "$out"; }
log() { printf '[%s %5.1fs] %s\n' "${INFRA_NAME:-infra}" "$(( ($(date +%s%N) - _t0) / 1000000 ))e-3" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (try: sudo $0)"; }

# A pid is alive when /proc has it and it is not a zombie: PID 1 on CI machines reaps late, and
# kill -0 calls a zombie alive.
alivep() { [ -n "${1:-}" ] && [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
alive_pidfile() { alivep "$(cat "$1" 2>/dev/null || true)"; }

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.1 s until it succeeds or SECONDS pass.
wait_for() {
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { log "timed out after ${limit}s waiting for $what"; return 1; }
    sleep 0.1
  done
}

# Install only the packages that are missing (one apt run; installs never start daemons here).
install_packages() {
  local missing=() p
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed (run 'apt-get update' first?)"
}

# Grid Engine's postinst needs the master's name; without it act_qmaster is written empty.
sge_preseed() {
  debconf-set-selections <<SEL
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string default
gridengine-common shared/gridenginemaster string $(hostname)
SEL
}

# shellcheck disable=SC2034 # used by the scripts that source this file
SSH_PACKAGES=(openssh-server openssh-client)
# shellcheck disable=SC2034
SGE_PACKAGES=(gridengine-master gridengine-exec gridengine-client)
# shellcheck disable=SC2034
SLURM_PACKAGES=(slurmctld slurmd slurm-client munge)

# The ssh side: one client key, one authorized_keys, one known_hosts covering every test host.
SSH_DIR=$TALON_INFRA_DIR/ssh
SSH_USER=${TALON_SSH_USER:-talon-test}

ssh_common_setup() {
  install_packages "${SSH_PACKAGES[@]}"
  mkdir -p "$SSH_DIR" /run/sshd
  chmod 755 "$TALON_INFRA_DIR" "$SSH_DIR" /run/sshd   # sshd reads AuthorizedKeysFile as the user
  [ -f "$SSH_DIR/client" ] || ssh-keygen -q -t ed25519 -N '' -C talon-test-client -f "$SSH_DIR/client"
  install -m 644 "$SSH_DIR/client.pub" "$SSH_DIR/authorized_keys"
  # Not root: root's dotfiles (pyenv init in ~/.bashrc) slow every command and leave stale locks.
  # '*' rather than useradd's locked '!': with UsePAM no, sshd refuses locked accounts.
  id "$SSH_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash -p '*' "$SSH_USER"
}

# ssh_config NAME ADDRESS PORT: write $SSH_DIR/NAME.conf (host key NAME.key, pid NAME.pid)
ssh_config() {
  local name=$1 addr=$2 port=$3
  [ -f "$SSH_DIR/$name.key" ] || ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$SSH_DIR/$name.key"
  cat > "$SSH_DIR/$name.conf" <<CONF
ListenAddress $addr
Port $port
HostKey $SSH_DIR/$name.key
PidFile $SSH_DIR/$name.pid
AuthorizedKeysFile $SSH_DIR/authorized_keys
AllowUsers $SSH_USER
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
StrictModes no
UsePAM no
UseDNS no
MaxStartups 50:30:100
Subsystem sftp internal-sftp
CONF
  echo "$addr $port" > "$SSH_DIR/$name.addr"
}

# known_hosts from the host keys themselves (not from ssh-keyscan: never trust the network for it)
ssh_write_known_hosts() {
  local f addr port name tmp=$SSH_DIR/known_hosts.tmp
  : > "$tmp"
  for f in "$SSH_DIR"/*.addr; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .addr); read -r addr port < "$f"
    [ -f "$SSH_DIR/$name.key.pub" ] || continue
    if [ "$port" = 22 ]; then printf '%s ' "$addr"; else printf '[%s]:%s ' "$addr" "$port"; fi >> "$tmp"
    cut -d' ' -f1,2 "$SSH_DIR/$name.key.pub" >> "$tmp"
  done
  chmod 644 "$tmp"; mv -f "$tmp" "$SSH_DIR/known_hosts"
}

# ssh_banner ADDRESS PORT: the server answers with an SSH banner
ssh_banner() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2 && head -c 4 <&3 | grep -q SSH-"; }
