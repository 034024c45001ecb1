#!/usr/bin/env bash
# TPC-C on this machine's MariaDB and PostgreSQL, beside sysbench's OLTP read-write on
# the same servers in the same session, so the numbers can be placed: fleetload's load
# speed (rows/s), tpmC and NOPM at two session counts, and sysbench oltp_read_write's
# transactions per second at the same thread counts. A benchmark, not a test.
#
#   bench/tpcc.sh                      # WAREHOUSES=4 SECS=30 SESSIONS="4 16" LOADERS=8
#   WAREHOUSES=8 SECS=60 bench/tpcc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WAREHOUSES=${WAREHOUSES:-4}
SECS=${SECS:-30}
SESSIONS=${SESSIONS:-"4 16"}
LOADERS=${LOADERS:-8}
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1} MYSQL_USER=${MYSQL_USER:-root}
PG_HOST=${PG_HOST:-127.0.0.1} PG_USER=${PG_USER:-postgres}
DB=${DB:-fl_tpcc_bench}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
command -v sysbench >/dev/null || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq sysbench >/dev/null; }
cargo build --release --locked --quiet
FL=target/release/fleetload
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mariadb -h"$MYSQL_HOST" -u"$MYSQL_USER" -e "CREATE DATABASE IF NOT EXISTS $DB; CREATE DATABASE IF NOT EXISTS ${DB}_sb"
for d in "$DB" "${DB}_sb"; do
  psql -q -h "$PG_HOST" -U "$PG_USER" -d postgres -tc "SELECT 1 FROM pg_database WHERE datname = '$d'" | grep -q 1 \
    || psql -q -h "$PG_HOST" -U "$PG_USER" -d postgres -c "CREATE DATABASE $d" >/dev/null
done
MYSQL_URL="mysql://$MYSQL_USER@$MYSQL_HOST:3306/$DB"
PG_URL="postgres://$PG_USER@$PG_HOST:5432/$DB"

printf '%-10s %-28s %12s\n' engine measure value
for engine in mariadb postgres; do
  url=$MYSQL_URL; [ "$engine" = postgres ] && url=$PG_URL
  out=$($FL prepare --scenario tpcc --warehouses "$WAREHOUSES" --target "$url" --loaders "$LOADERS")
  rows_s=$(echo "$out" | sed -n 's/.*(\([0-9]*\) rows\/s).*/\1/p')
  printf '%-10s %-28s %12s\n' "$engine" "load rows/s ($WAREHOUSES wh)" "$rows_s"
  for s in $SESSIONS; do
    # A fresh database for each run: the same starting point.
    $FL prepare --scenario tpcc --warehouses "$WAREHOUSES" --target "$url" --loaders "$LOADERS" >/dev/null
    dir="$work/$engine-$s"
    FLEETLOAD_LOG=error $FL run --scenario tpcc --warehouses "$WAREHOUSES" --target "$url" --workers 1 \
        --sessions "$s" --duration "${SECS}s" --warmup 5s --report-dir "$dir" >/dev/null
    read -r tpmc nopm agree < <(python3 -c "
import json; t = json.load(open('$dir/report.json'))['tpcc']
print(t['tpmC'], t.get('nopm'), t['new_orders_committed'] == t.get('database_new_orders'))")
    printf '%-10s %-28s %12s\n' "$engine" "tpmC / NOPM, $s sessions" "$tpmc / $nopm"
    [ "$agree" = True ] || echo "  (clients and database disagree on committed New-Orders: see $dir)"
  done
  for s in $SESSIONS; do
    if [ "$engine" = mariadb ]; then
      sb=(--db-driver=mysql --mysql-host="$MYSQL_HOST" --mysql-user="$MYSQL_USER" --mysql-db="${DB}_sb")
    else
      sb=(--db-driver=pgsql --pgsql-host="$PG_HOST" --pgsql-user="$PG_USER" --pgsql-db="${DB}_sb")
    fi
    sysbench oltp_read_write "${sb[@]}" --tables=4 --table-size=100000 cleanup >/dev/null 2>&1 || true
    sysbench oltp_read_write "${sb[@]}" --tables=4 --table-size=100000 --threads=4 prepare >/dev/null
    tps=$(sysbench oltp_read_write "${sb[@]}" --tables=4 --table-size=100000 --threads="$s" --time="$SECS" run \
      | sed -n 's/.*transactions: *[0-9]* *(\([0-9.]*\) per sec.).*/\1/p')
    printf '%-10s %-28s %12s\n' "$engine" "sysbench oltp_rw tps, $s thr" "$tps"
  done
done
