#!/bin/bash
# Connect-per-transaction (pgbench -S -C -c 8) straight to PostgreSQL, through connguard in relay mode,
# through connguard with pool.mode: session (size 20), and through PgBouncer in session mode (pool 20),
# interleaved for ROUNDS rounds of SECONDS seconds. Needs the built jar, pgbench, pgbouncer and a
# pgbench-initialized database (DB, default cg_bench) on 127.0.0.1:5432 with trust for postgres.
# Ports 26532-26534 and 29633 are below the ephemeral range so a busy machine does not hold them.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
DB=${DB:-cg_bench}
HERE=$(cd "$(dirname "$0")" && pwd)
JAR=${JAR:-$HERE/../proxy-app/target/connguard.jar}
WORK=$(mktemp -d /tmp/cg-pool-bench.XXXXXX)
chmod 777 "$WORK"
cat > "$WORK/connguard.yaml" <<YAML
admin:
  listen: 127.0.0.1:29633
listeners:
  - name: session
    protocol: postgres
    listen: 127.0.0.1:26532
    upstream: 127.0.0.1:5432
    pool:
      mode: session
      size: 20
  - name: relay
    protocol: postgres
    listen: 127.0.0.1:26534
    upstream: 127.0.0.1:5432
clients:
  defaults:
    maxConnections: 0
logging:
  level: warn
ioThreads: 2
YAML
printf '"postgres" ""\n' > "$WORK/users.txt"
cat > "$WORK/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 26533
unix_socket_dir =
auth_type = trust
auth_file = $WORK/users.txt
pool_mode = session
max_client_conn = 1000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
INI
chmod 644 "$WORK"/*
java -XX:+UseParallelGC -jar "$JAR" --config "$WORK/connguard.yaml" > "$WORK/connguard.log" 2>&1 &
CG=$!
if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "exec pgbouncer $WORK/pgbouncer.ini" > "$WORK/pgbouncer.log" 2>&1 &
else pgbouncer "$WORK/pgbouncer.ini" > "$WORK/pgbouncer.log" 2>&1 & fi
PGB=$!
trap 'kill $CG 2>/dev/null; pkill -P $PGB 2>/dev/null; kill $PGB 2>/dev/null' EXIT
for i in $(seq 60); do curl -sf 127.0.0.1:29633/readyz > /dev/null && break; sleep 1; done
for round in $(seq "$ROUNDS"); do
  for target in direct:5432 relay:26534 session:26532 pgbouncer:26533; do
    name=${target%%:*}; port=${target##*:}
    tps=$(pgbench -h 127.0.0.1 -p "$port" -U postgres -S -C -c 8 -j 2 -T "$SECONDS_PER_RUN" -n "$DB" 2>/dev/null \
      | awk '/^tps/ {print $3; exit}')
    echo "round $round $name tps=$tps"
  done
done
