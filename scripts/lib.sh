# Shell functions the scripts share (sourced, never run): `source "$ROOT/scripts/lib.sh"` after
# setting ROOT, and LOG_TAG for the prefix of the script's own messages.

TOOLS="$ROOT/.tools"

log() { printf '[%s] %s\n' "${LOG_TAG:-hodei}" "$*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Installs Debian packages without prompts. The package lists are fetched once per .tools (and
# again when an install fails on lists gone stale).
# One install at a time (a lock file under .tools): `npm test` installs the tests' tools while
# scripts/setup.sh installs its own.
apt_install() {
  mkdir -p "$TOOLS"
  (
    flock 9
    if [ ! -f "$TOOLS/.apt-updated" ]; then
      as_root apt-get update -qq
      touch "$TOOLS/.apt-updated"
    fi
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; then
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    fi
  ) 9>"$TOOLS/.apt.lock"
}
