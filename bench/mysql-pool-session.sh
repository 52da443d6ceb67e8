#!/bin/bash
# Connect-per-transaction on MySQL (sysbench/connect.lua: a new connection, SELECT 1, close; 8 threads)
# straight to the server, through connguard in relay mode and through connguard with pool.mode: session
# (size 20), interleaved for ROUNDS rounds of SECONDS_PER_RUN seconds. Needs the built jar, sysbench and a
# MariaDB / MySQL on 127.0.0.1:3306 with an account USER / PASSWORD (default: the one MySqlSessionPoolIT
# creates, cg_my_pool) that may use database DB (default test). The pooled clients give connguard their
# password with caching_sha2_password's RSA exchange (plaintext leg).
# Ports 26542-26543 and 29643 are below the ephemeral range so a busy machine does not hold them.
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
java -XX:+UseParallelGC -jar "$JAR" --config "$WORK/connguard.yaml" > "$WORK/connguard.log" 2>&1 &
CG=$!
trap 'kill $CG 2>/dev/null' EXIT
for i in $(seq 60); do curl -sf 127.0.0.1:29643/readyz > /dev/null && break; sleep 1; done
for round in $(seq "$ROUNDS"); do
  for target in direct:3306 relay:26543 session:26542; do
    name=${target%%:*}; port=${target##*:}
    rate=$(sysbench "$HERE/sysbench/connect.lua" --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user="$USER_NAME" \
      --mysql-password="$PASSWORD" --mysql-db="$DB" --mysql-ssl=off --threads="$THREADS" --time="$SECONDS_PER_RUN" run 2>&1 \
      | awk '/transactions:/ {gsub(/\(/, "", $3); print $3; exit}')
    echo "round $round $name connections/s=$rate"
  done
done
curl -s 127.0.0.1:29643/pools
echo
