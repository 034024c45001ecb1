#!/usr/bin/env bash
# A local MariaDB primary with a GTID replica, to rehearse a failover drill before
# running it on Aurora MySQL (docs/deploy.md, "Rehearse a failover drill locally").
#
#   deploy/local/maria-pair.sh up         primary on 127.0.0.1:PORT, replica on 127.0.0.2:PORT
#   deploy/local/maria-pair.sh run -- fleetload run --target mysql://fleetload@writer.fleetload.test:PORT/test ...
#   deploy/local/maria-pair.sh failover   demote the primary, promote the replica, move the name
#   deploy/local/maria-pair.sh status     which server is the writer
#   deploy/local/maria-pair.sh down       stop both and remove the directory
#
# PORT: $PORT or 53306. State: $FLEETLOAD_LOCAL_DIR or /tmp/fleetload-local-maria. The
# user `fleetload` (no password, loopback only) has no privilege that bypasses
# read_only, so a demoted writer refuses its writes as Aurora's old writer does.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

dir=$(state_dir maria)
[ -x /usr/sbin/mariadbd ] || die "no MariaDB server installed (apt-get install mariadb-server)"

root() { # NAME SQL
  mariadb --protocol=socket -S "$dir/$1.sock" -uroot -N -B -e "$2"
}

serve() { # NAME ADDR ID
  local port user=()
  port=$(port_of "$dir")
  [ "$(id -u)" -eq 0 ] && user=(--user=mysql)
  /usr/sbin/mariadbd --no-defaults --datadir="$dir/$1" --port="$port" \
    --bind-address="$2" --socket="$dir/$1.sock" --pid-file="$dir/$1.pid" \
    --log-error="$dir/$1.err" --skip-name-resolve --server-id="$3" \
    --log-bin="$dir/$1/bin" --innodb-flush-log-at-trx-commit=2 --max-connections=500 \
    "${user[@]}" >/dev/null 2>&1 &
  for _ in $(seq 300); do root "$1" "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "mariadbd $1 did not start; see $dir/$1.err"
}

case ${1:-} in
  up)
    [ -e "$dir/port" ] && die "a pair is already up in $dir (\`${0##*/} down\` first)"
    echo "${PORT:-53306}" > "$dir/port"
    user=()
    if [ "$(id -u)" -eq 0 ]; then chown mysql:mysql "$dir"; user=(--user=mysql); fi
    for n in primary replica; do
      mariadb-install-db --datadir="$dir/$n" --auth-root-authentication-method=normal \
        --skip-test-db "${user[@]}" >/dev/null
    done
    serve primary 127.0.0.1 1
    serve replica 127.0.0.2 2
    root primary "CREATE USER 'fleetload'@'127.0.0.%';
      GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER ON *.* TO 'fleetload'@'127.0.0.%';
      CREATE USER 'repl'@'127.0.0.%' IDENTIFIED BY 'repl';
      GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.%';
      CREATE DATABASE test;"
    root replica "SET GLOBAL read_only = 1;
      CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $(port_of "$dir"), MASTER_USER = 'repl',
        MASTER_PASSWORD = 'repl', MASTER_USE_GTID = slave_pos;
      START SLAVE;"
    point_writer_at "$dir" 127.0.0.1 127.0.0.2
    echo "primary 127.0.0.1:$(port_of "$dir"), replica 127.0.0.2:$(port_of "$dir") (GTID replication)"
    echo "writer endpoint: mysql://fleetload@$WRITER_NAME:$(port_of "$dir")/test (through \`${0##*/} run -- ...\`)"
    ;;
  run)
    shift
    run_with_hosts "$dir" "$@"
    ;;
  failover)
    root primary "SET GLOBAL read_only = 1"
    pos=$(root primary "SELECT @@gtid_binlog_pos")
    for _ in $(seq 300); do
      [ "$(root replica "SELECT @@gtid_slave_pos")" = "$pos" ] && break
      sleep 0.1
    done
    root replica "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0"
    point_writer_at "$dir" 127.0.0.2 127.0.0.1
    echo "failover done at $(date +%T.%N | cut -c1-12): the writer is 127.0.0.2:$(port_of "$dir"), the old primary is read-only"
    ;;
  status)
    for n in primary replica; do
      echo "$n: read_only=$(root "$n" 'SELECT @@read_only'), gtid=$(root "$n" 'SELECT @@gtid_current_pos')"
    done
    echo "$WRITER_NAME -> $(awk -v n="$WRITER_NAME" '$2 == n {print $1}' "$dir/hosts")"
    ;;
  down)
    for n in replica primary; do
      if [ -f "$dir/$n.pid" ]; then kill "$(cat "$dir/$n.pid")" 2>/dev/null || true; fi
    done
    for _ in $(seq 100); do
      pgrep -f -- "--datadir=$dir/" >/dev/null || break
      sleep 0.1
    done
    rm -rf "$dir"
    echo "stopped and removed $dir"
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
