#!/bin/bash
# Connect-per-transaction on MySQL (sysbench/connect.lua: a new connection, SELECT 1, close; 8 threads)
# straight to the server, through HAProxy in TCP mode, through connguard in relay mode and through connguard
# with pool.mode: session (size 20), interleaved for ROUNDS rounds of SECONDS_PER_RUN seconds. Each line
# gives the rate and, for a proxy, its CPU time (user + system, from /proc/<pid>/stat) per connection.
# CG_JAVA_OPTS adds JVM options (a JFR recording, say); HAProxy is skipped when it is not installed. Needs the built jar, sysbench and a
# MariaDB / MySQL on 127.0.0.1:3306 with an account USER / PASSWORD (default: the one MySqlSessionPoolIT
# creates, cg_my_pool) that may use database DB (default test). A pooled client whose login a new server
# connection needs gives connguard its password with caching_sha2_password's RSA exchange (plaintext leg);
# the others are admitted by their answer to connguard's scramble.
# Ports 26542-26544 and 29643 are below the ephemeral range so a busy machine does not hold them.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
THREADS=${THREADS:-8}
DB=${DB:-test}
USER_NAME=${USER_NAME:-cg_my_pool}
PASSWORD=${PASSWORD:-cg_my_pool_pw}
HERE=$(cd "$(dirname "$0")" && pwd)
JAR=${JAR:-$HERE/../proxy-app/target/connguard.jar}
WORK=$(mktemp -d /tmp/cg-mysql-pool-bench.XXXXXX)
cat > "$WORK/connguard.yaml" <<YAML
admin:
  listen: 127.0.0.1:29643
listeners:
  - name: session
    protocol: mysql
    listen: 127.0.0.1:26542
    upstream: 127.0.0.1:3306
    pool:
      mode: session
      size: 20
  - name: relay
    protocol: mysql
    listen: 127.0.0.1:26543
    upstream: 127.0.0.1:3306
clients:
  defaults:
    maxConnections: 0
logging:
  level: warn
ioThreads: 2
YAML
# shellcheck disable=SC2086
java -XX:+UseParallelGC ${CG_JAVA_OPTS:-} -jar "$JAR" --config "$WORK/connguard.yaml" > "$WORK/connguard.log" 2>&1 &
CG=$!
HA=
if command -v haproxy > /dev/null; then
  printf '%s\n' global '    maxconn 9950' defaults '    mode tcp' '    maxconn 9950' '    timeout connect 5s' \
    '    timeout client 1h' '    timeout server 1h' 'listen mysql' '    bind 127.0.0.1:26544' \
    '    server db 127.0.0.1:3306' > "$WORK/haproxy.cfg"
  haproxy -db -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
  HA=$!
fi
trap 'kill $CG $HA 2>/dev/null' EXIT
# CPU time of a process in clock ticks (utime + stime, fields 14 and 15 of /proc/<pid>/stat).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
# The database's own CPU per connection too, when its process is visible here (a reset costs it work).
DBPID=$(pgrep -o -x mariadbd || pgrep -o -x mysqld || true)
per_connection() { awk -v t="$1" -v n="$2" -v hz="$TCK" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }'; }
for i in $(seq 60); do curl -sf 127.0.0.1:29643/readyz > /dev/null && break; sleep 1; done
# Fill the session pool before the rounds, from 20 processes at once (the pool's size). A client that needs
# a new server connection gives connguard its password (caching_sha2_password's RSA exchange), and
# libmariadb loads that plugin at first use racily: eight sysbench threads doing it at once fail with
# "Plugin caching_sha2_password could not be loaded: it is already loaded". Once the pool is full, clients
# are admitted by the scramble check and never load the plugin.
FILL=()
for i in $(seq 20); do
  mysql -h127.0.0.1 -P26542 -u"$USER_NAME" -p"$PASSWORD" --ssl=0 "$DB" --default-character-set=utf8mb4 -e 'SELECT SLEEP(1)' > /dev/null 2>> "$WORK/warmup.log" &
  FILL+=($!)
done
wait "${FILL[@]}" || { echo "filling the session pool failed:"; tail -5 "$WORK/warmup.log"; exit 1; }
for round in $(seq "$ROUNDS"); do
  for target in direct:3306:0 haproxy:26544:$HA relay:26543:$CG session:26542:$CG; do
    IFS=: read -r name port pid <<< "$target"
    [ -n "$pid" ] || continue
    before=0; [ "$pid" = 0 ] || before=$(ticks "$pid")
    db_before=0; [ -z "$DBPID" ] || db_before=$(ticks "$DBPID")
    out=$(sysbench "$HERE/sysbench/connect.lua" --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user="$USER_NAME" \
      --mysql-password="$PASSWORD" --mysql-db="$DB" --mysql-ssl=off --threads="$THREADS" --time="$SECONDS_PER_RUN" run 2>&1 || true)
    rate=$(awk '/transactions:/ {gsub(/\(/, "", $3); print $3; exit}' <<< "$out")
    total=$(awk '/transactions:/ {print $2; exit}' <<< "$out")
    if [ -z "$total" ] || [ "$total" = 0 ]; then
      echo "round $round $name failed:"; tail -5 <<< "$out"; continue
    fi
    cpu=""
    [ "$pid" = 0 ] || cpu=" proxy_cpu_us/connection=$(per_connection $(( $(ticks "$pid") - before )) "$total")"
    [ -z "$DBPID" ] || cpu="$cpu db_cpu_us/connection=$(per_connection $(( $(ticks "$DBPID") - db_before )) "$total")"
    echo "round $round $name connections/s=$rate$cpu"
  done
done
curl -s 127.0.0.1:29643/pools
echo
