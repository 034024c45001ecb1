#!/usr/bin/env bash
# A local PostgreSQL primary with a streaming replica, to rehearse a failover drill
# before running it on Aurora (docs/deploy.md, "Rehearse a failover drill locally").
#
#   deploy/local/pg-pair.sh up            primary on 127.0.0.1:PORT, replica on 127.0.0.2:PORT
#   deploy/local/pg-pair.sh run -- fleetload run --target postgres://postgres@writer.fleetload.test:PORT/postgres ...
#   deploy/local/pg-pair.sh failover      demote the primary, promote the replica, move the name
#   deploy/local/pg-pair.sh status        which server is the writer
#   deploy/local/pg-pair.sh down          stop both and remove the directory
#
# PORT: $PORT or 55432. State: $FLEETLOAD_LOCAL_DIR or /tmp/fleetload-local-pg. Trust
# authentication on loopback, user postgres. As root the servers run as `postgres`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

dir=$(state_dir pg)
bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || die "no PostgreSQL server installed (apt-get install postgresql)"

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ctl() { # DATA HOST ACTION
  local port
  port=$(port_of "$dir")
  as_pg "$bin/pg_ctl" -D "$dir/$1" -l "$dir/$1.log" -w -t 60 \
    -o "-p $port -c listen_addresses=$2 -k $dir/sock-$1" "$3"
}

sql() { # HOST SQL
  psql -h "$1" -p "$(port_of "$dir")" -U postgres -d postgres -XAtq -v ON_ERROR_STOP=1 -c "$2"
}

case ${1:-} in
  up)
    [ -e "$dir/port" ] && die "a pair is already up in $dir (\`${0##*/} down\` first)"
    echo "${PORT:-55432}" > "$dir/port"
    mkdir -p "$dir/sock-primary" "$dir/sock-replica"
    [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$dir"
    as_pg "$bin/initdb" -D "$dir/primary" -U postgres --auth=trust -E UTF8 >/dev/null
    printf "wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\nmax_connections = 300\n" \
      | as_pg tee -a "$dir/primary/postgresql.conf" >/dev/null
    ctl primary 127.0.0.1 start >/dev/null
    as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$(port_of "$dir")" -U postgres \
      -D "$dir/replica" -R -X stream
    ctl replica 127.0.0.2 start >/dev/null
    point_writer_at "$dir" 127.0.0.1 127.0.0.2
    echo "primary 127.0.0.1:$(port_of "$dir"), replica 127.0.0.2:$(port_of "$dir")"
    echo "writer endpoint: postgres://postgres@$WRITER_NAME:$(port_of "$dir")/postgres (through \`${0##*/} run -- ...\`)"
    ;;
  run)
    shift
    run_with_hosts "$dir" "$@"
    ;;
  failover)
    # As Aurora does it: the old writer stops taking writes, the replica catches up and
    # is promoted, the endpoint's name moves to it. Clients see read-only errors, then
    # broken connections as they reconnect, then the new writer.
    sql 127.0.0.1 "ALTER SYSTEM SET default_transaction_read_only = on" >/dev/null
    sql 127.0.0.1 "SELECT pg_reload_conf()" >/dev/null
    lsn=$(sql 127.0.0.1 "SELECT pg_current_wal_lsn()")
    for _ in $(seq 300); do
      [ "$(sql 127.0.0.2 "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && break
      sleep 0.1
    done
    as_pg "$bin/pg_ctl" -D "$dir/replica" -w promote >/dev/null
    point_writer_at "$dir" 127.0.0.2 127.0.0.1
    echo "failover done at $(date +%T.%N | cut -c1-12): the writer is 127.0.0.2:$(port_of "$dir"), the old primary is read-only"
    ;;
  status)
    for h in 127.0.0.1 127.0.0.2; do
      echo "$h:$(port_of "$dir") in recovery: $(sql "$h" 'SELECT pg_is_in_recovery()'), read-only default: $(sql "$h" 'SHOW default_transaction_read_only')"
    done
    echo "$WRITER_NAME -> $(awk -v n="$WRITER_NAME" '$2 == n {print $1}' "$dir/hosts")"
    ;;
  down)
    for d in replica primary; do
      if [ -d "$dir/$d" ]; then
        as_pg "$bin/pg_ctl" -D "$dir/$d" -m immediate -w stop >/dev/null 2>&1 || true
      fi
    done
    rm -rf "$dir"
    echo "stopped and removed $dir"
    ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
