# Shared by the example's job scripts: sourced (`. "$(dirname "$0")/_common.sh"`), not run.
#
# Under Talon a job gets TALON_RUN_ID, TALON_JOB, TALON_PERIOD, TALON_RUN_FILE and TALON_REPO.
# It may report progress and artifacts with the `talon` command; run by hand (or where talon is
# not installed) the scripts just do their work, so the reporting below is guarded.

set -eu

REPO=${TALON_REPO:-$(cd "$(dirname "$0")/.." && pwd)}
OUT="$REPO/out"                # what the jobs produce (ignored by git, see .gitignore)

say() { printf '%s: %s\n' "${0##*/}" "$*"; }

under_talon() { [ -n "${TALON_RUN_ID:-}" ] && command -v talon >/dev/null 2>&1; }

# progress PERCENT            -- percentage-based progress
progress() {
    if under_talon; then talon progress --percent "$1" || say "could not report progress"; fi
}

# item NAME STATE [TOTAL]     -- item-based progress: each item has its own state
item() {
    if under_talon; then
        talon progress --item "$1=$2" ${3:+--total "$3"} || say "could not report progress"
    fi
}

# artifact PATH NAME          -- record a file the run produced
artifact() {
    if under_talon; then
        talon artifact add "file://$1" --name "$2" || say "could not record artifact"
    fi
}

# need VALUE WHAT             -- fail with a clear message when an argument is missing
need() { [ -n "$1" ] || { say "missing $2" >&2; exit 2; }; }
