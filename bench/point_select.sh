#!/usr/bin/env bash
# Client CPU per operation of the load generator: fleetload vs sysbench (MariaDB) and
# pgbench (PostgreSQL), in one run, on the same sbtest1 table, same sessions, same
# fixed rate. Prints achieved ops/s, CPU µs per operation of the load-generator process
# (user + system), and the ratios. A benchmark, not a test: figures vary with the
# machine, so compare the ratios measured in the same run.
#
#   bench/point_select.sh                 # RATE=4000 SESSIONS=8 SECS=10 ROWS=100000 ROUNDS=3
#   RATE=8000 SECS=30 bench/point_select.sh
#   RATE=0 bench/point_select.sh          # closed loop: every tool at full speed
#   ROUNDS=5 SECS=10 bench/point_select.sh  # more rounds: the median ratio is printed
#   TLS=1 bench/point_select.sh           # every tool over TLS (the servers must offer it)
#   ENGINES=postgres bench/point_select.sh  # one engine only (mariadb, postgres or both)
#   PIN=1 bench/point_select.sh           # databases (and coordinator) on core 0, every load
#                                         # generator on core 1: the database as if on another host
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-4000}
SESSIONS=${SESSIONS:-8}
SECS=${SECS:-10}
ROWS=${ROWS:-100000}
# fleetload worker threads: pgbench runs with -j 2. At a fixed rate one thread is the
# cheapest (no cross-thread wake-ups); at full speed a second thread overlaps the
# sessions' work with the database's, as pgbench's second thread does.
THREADS=${THREADS:-$([ "$RATE" = 0 ] && echo 2 || echo 1)}
ROUNDS=${ROUNDS:-3}          # each round runs all four tools; the ratio of a round is side by side
ARRIVAL=${ARRIVAL:-poisson}   # sysbench --rate and pgbench -R use Poisson arrivals too
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1} MYSQL_USER=${MYSQL_USER:-root} MYSQL_DB=${MYSQL_DB:-test}
PG_HOST=${PG_HOST:-127.0.0.1} PG_USER=${PG_USER:-postgres} PG_DB=${PG_DB:-test}
PIN=${PIN:-0}
# TLS the same for every tool: by default none. (libpq's default, sslmode=prefer, gave
# pgbench TLS whenever the server offered it, while fleetload's rustls costs too little
# to show: the PostgreSQL ratios then compared encrypted pgbench with near-free TLS.)
TLS=${TLS:-0}
ENGINES=${ENGINES:-mariadb postgres}
on() { [[ " $ENGINES " == *" $1 "* ]]; }
on mariadb || on postgres || { echo "ENGINES=\"$ENGINES\": name mariadb, postgres or both" >&2; exit 2; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
command -v sysbench >/dev/null || need+=(sysbench)
command -v pgbench >/dev/null || need+=(postgresql-contrib)
[ -x /usr/bin/time ] || need+=(time)
if [ "${#need[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --locked --quiet
FL=target/release/fleetload
work=$(mktemp -d)
# GEN runs a load generator, SIDE what stands in for other hosts (the coordinator).
GEN=() SIDE=()
servers() { pgrep -x mariadbd; pgrep -x postgres; }
unpin() { for p in $(servers); do $SUDO taskset -a -p 0x3 "$p" >/dev/null || true; done; }
trap 'rm -rf "$work"; if [ "$PIN" = 1 ]; then unpin; fi' EXIT
if [ "$PIN" = 1 ]; then
  [ "$(nproc)" -ge 2 ] || { echo "PIN=1 needs two cores" >&2; exit 2; }
  # PostgreSQL backends fork from the pinned postmaster and inherit its core.
  for p in $(servers); do $SUDO taskset -a -p 0x1 "$p" >/dev/null; done
  GEN=(taskset -c 1) SIDE=(taskset -c 0)
fi
MYSQL_URL="mysql://$MYSQL_USER@$MYSQL_HOST:3306/$MYSQL_DB"
PG_URL="postgres://$PG_USER@$PG_HOST:5432/$PG_DB"
if [ "$TLS" = 1 ]; then
  MYSQL_URL+="?ssl-mode=REQUIRED" PG_URL+="?sslmode=require" SB_SSL=on
  export PGSSLMODE=require
else
  MYSQL_URL+="?ssl-mode=DISABLED" PG_URL+="?sslmode=disable" SB_SSL=off
  export PGSSLMODE=disable
fi

echo "preparing sbtest1 ($ROWS rows) with fleetload prepare on both servers"
if on mariadb; then $FL prepare --target "$MYSQL_URL" --scenario point_select --rows "$ROWS" >/dev/null; fi
if on postgres; then $FL prepare --target "$PG_URL" --scenario point_select --rows "$ROWS" >/dev/null; fi

cpu_of() { awk '{printf "%.3f", $1 + $2}' "$1"; }

fleetload_run() { # $1 label, $2 url
  local port=$((7400 + RANDOM % 500)) dir="$work/fl-$1"
  local load=(--rate "$RATE" --arrival "$ARRIVAL")
  [ "$RATE" = 0 ] && load=(--mode closed)
  FLEETLOAD_LOG=error "${SIDE[@]}" $FL coordinator --listen "127.0.0.1:$port" --target "$2" --scenario point_select --rows "$ROWS" \
      "${load[@]}" --sessions "$SESSIONS" --duration "${SECS}s" --workers 1 --report-dir "$dir" >/dev/null &
  local coord=$!
  sleep 0.3
  FLEETLOAD_LOG=error /usr/bin/time -f "%U %S" -o "$work/cpu-fl-$1" "${GEN[@]}" $FL worker --coordinator "http://127.0.0.1:$port" --name bench --threads "$THREADS" >/dev/null
  wait "$coord" || true
  local ops
  ops=$(python3 -c "import json,sys; r=json.load(open('$dir/report.json')); print(r['workers'][0]['executed']['point_select']['ok'])")
  echo "$1 fleetload $ops $(cpu_of "$work/cpu-fl-$1")"
}

sysbench_run() {
  /usr/bin/time -f "%U %S" -o "$work/cpu-sb" "${GEN[@]}" sysbench oltp_point_select --db-driver=mysql --mysql-host="$MYSQL_HOST" --mysql-ssl="$SB_SSL" \
      --mysql-user="$MYSQL_USER" --mysql-db="$MYSQL_DB" --tables=1 --table-size="$ROWS" --point-selects=1 \
      --threads="$SESSIONS" --rate="$RATE" --time="$SECS" --report-interval=0 run > "$work/sb.out"   # --rate=0: unlimited
  local ops
  ops=$(awk '/read:/ {print $2; exit}' "$work/sb.out")
  echo "mariadb sysbench $ops $(cpu_of "$work/cpu-sb")"
}

pgbench_run() {
  printf '\\set id random(1, %s)\nSELECT c FROM sbtest1 WHERE id = :id;\n' "$ROWS" > "$work/point_select.sql"
  local rate=(-R "$RATE")
  [ "$RATE" = 0 ] && rate=()
  /usr/bin/time -f "%U %S" -o "$work/cpu-pg" "${GEN[@]}" pgbench -h "$PG_HOST" -U "$PG_USER" -n -M prepared -c "$SESSIONS" -j 2 \
      "${rate[@]}" -T "$SECS" -f "$work/point_select.sql" "$PG_DB" > "$work/pg.out" 2>&1
  local ops
  ops=$(awk -F'[:/ ]+' '/number of transactions actually processed/ {print $6; exit}' "$work/pg.out")
  echo "postgres pgbench $ops $(cpu_of "$work/cpu-pg")"
}

echo "running: $SESSIONS sessions, $RATE ops/s, ${SECS}s each, one after another, $ROUNDS rounds, fleetload --threads $THREADS, TLS $([ "$TLS" = 1 ] && echo on || echo off)$([ "$PIN" = 1 ] && echo ", pinned: databases core 0, generators core 1")"
for round in $(seq "$ROUNDS"); do
  if on mariadb; then fleetload_run mariadb "$MYSQL_URL"; sysbench_run; fi
  if on postgres; then fleetload_run postgres "$PG_URL"; pgbench_run; fi
done > "$work/results"

python3 - "$work/results" "$SECS" "$RATE" "$SESSIONS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
secs, rate, sessions = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
print(f"\npoint_select, {sessions} sessions, {'closed loop (full speed)' if rate == 0 else f'target {rate:.0f} ops/s'}, {secs:.0f} s per tool and round")
print(f"{'round':<7}{'target':<10}{'tool':<11}{'ops/s':>10}{'CPU s':>9}{'CPU µs/op':>11}")
per = {}  # (target, tool) -> [µs/op per round]
for target, tool, ops, cpu in rows:
    ops, cpu = int(ops), float(cpu)
    us = cpu * 1e6 / ops if ops else float('nan')
    runs = per.setdefault((target, tool), [])
    runs.append(us)
    print(f"{len(runs):<7}{target:<10}{tool:<11}{ops/secs:>10.1f}{cpu:>9.2f}{us:>11.2f}")
for target, peer in (("mariadb", "sysbench"), ("postgres", "pgbench")):
    a, b = per.get((target, "fleetload"), []), per.get((target, peer), [])
    ratios = [x / y for x, y in zip(a, b)]
    if ratios:
        med = statistics.median(ratios)
        print(f"{target}: fleetload / {peer} CPU per op, per round: "
              f"{' '.join(f'{r:.2f}' for r in ratios)}; median {med:.2f} "
              f"({'fleetload cheaper' if med <= 1 else 'fleetload costlier'})")
PY
