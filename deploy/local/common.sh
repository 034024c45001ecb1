# shellcheck shell=bash
# Shared by pg-pair.sh and maria-pair.sh: a directory of state, the writer's name, and
# running a command that resolves that name through the pair's own hosts file.

die() { echo "${0##*/}: $*" >&2; exit 1; }

# The pair's state directory (default under /tmp), made absolute.
state_dir() {
  local d=${FLEETLOAD_LOCAL_DIR:-/tmp/fleetload-local-$1}
  mkdir -p "$d"
  (cd "$d" && pwd)
}

# The name clients use for the writer, like an Aurora cluster endpoint. It resolves
# through DIR/hosts, which `failover` rewrites: clients that connect again resolve the
# new writer, as they would after Aurora moved the endpoint's DNS record.
WRITER_NAME=writer.fleetload.test
READER_NAME=reader.fleetload.test

point_writer_at() { # DIR WRITER_ADDR READER_ADDR
  # In place (not a new file): the bind mount of `run` shows the same file.
  printf '127.0.0.1 localhost\n%s %s\n%s %s\n' "$2" "$WRITER_NAME" "$3" "$READER_NAME" > "$1/hosts"
}

# `run -- CMD...`: CMD in a mount namespace whose /etc/hosts is the pair's hosts file,
# so the writer's name follows `failover`. Needs root (unshare -m).
run_with_hosts() { # DIR [--] CMD...
  local dir=$1; shift
  [ "${1:-}" = "--" ] && shift
  [ "$#" -gt 0 ] || die "run -- COMMAND..."
  [ "$(id -u)" -eq 0 ] || die "run needs root (a mount namespace with the pair's /etc/hosts)"
  # shellcheck disable=SC2016  # $0 and $@ are the inner shell's
  exec unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$dir/hosts" "$@"
}

# The port stored by `up`.
port_of() { cat "$1/port" 2>/dev/null || die "no pair in $1: run \`${0##*/} up\` first"; }
