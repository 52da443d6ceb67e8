#!/bin/bash
# sysbench oltp_point_select (server-side prepared statements, one point select per event, no BEGIN/COMMIT)
# through connguard in relay mode and through connguard with pool.mode: transaction (size 20), THREADS
# client connections each, interleaved for ROUNDS rounds of SECONDS_PER_RUN seconds; the issue's bar is
# transaction >= 0.9 x relay. Needs the built jar (./mvnw -q -o package -pl proxy-app -am -DskipTests),
# sysbench and a MariaDB / MySQL on 127.0.0.1:3306 with an account USER_NAME / PASSWORD (default: the one
# MySqlTransactionPoolIT creates, cg_my_tx) that may use database DB (default test). The transaction-mode
# clients give connguard their password with caching_sha2_password's RSA exchange (plaintext leg).
# Ports 26544-26545 and 29644 are below the ephemeral range so a busy machine does not hold them.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
THREADS=${THREADS:-16}
TABLE_SIZE=${TABLE_SIZE:-10000}
DB=${DB:-test}
USER_NAME=${USER_NAME:-cg_my_tx}
PASSWORD=${PASSWORD:-cg_my_tx_pw}
HERE=$(cd "$(dirname "$0")" && pwd)
JAR=${JAR:-$HERE/../proxy-app/target/connguard.jar}
WORK=$(mktemp -d /tmp/cg-mysql-tx-bench.XXXXXX)
cat > "$WORK/connguard.yaml" <<YAML
admin:
  listen: 127.0.0.1:29644
listeners:
  - name: transaction
    protocol: mysql
    listen: 127.0.0.1:26544
    upstream: 127.0.0.1:3306
    pool:
      mode: transaction
      size: 20
  - name: relay
    protocol: mysql
    listen: 127.0.0.1:26545
    upstream: 127.0.0.1:3306
clients:
  defaults:
    maxConnections: 0
logging:
  level: warn
ioThreads: 2
YAML
COMMON=(--mysql-host=127.0.0.1 --mysql-user="$USER_NAME" --mysql-password="$PASSWORD" --mysql-db="$DB"
  --mysql-ssl=off --tables=1 --table-size="$TABLE_SIZE")
sysbench oltp_point_select "${COMMON[@]}" --mysql-port=3306 cleanup > /dev/null 2>&1 || true
sysbench oltp_point_select "${COMMON[@]}" --mysql-port=3306 prepare > /dev/null
java -XX:+UseParallelGC -jar "$JAR" --config "$WORK/connguard.yaml" > "$WORK/connguard.log" 2>&1 &
CG=$!
trap 'kill $CG 2>/dev/null; sysbench oltp_point_select "${COMMON[@]}" --mysql-port=3306 cleanup > /dev/null 2>&1' EXIT
for i in $(seq 60); do curl -sf 127.0.0.1:29644/readyz > /dev/null && break; sleep 1; done
for round in $(seq "$ROUNDS"); do
  for target in relay:26545 transaction:26544; do
    name=${target%%:*}; port=${target##*:}
    out=$(sysbench oltp_point_select "${COMMON[@]}" --mysql-port="$port" --threads="$THREADS" \
      --time="$SECONDS_PER_RUN" --report-interval=0 run 2>&1) || { echo "$out"; exit 1; }
    tps=$(awk '/transactions:/ {gsub(/\(/, "", $3); print $3; exit}' <<< "$out")
    errors=$(awk '/ignored errors:/ {print $3; exit}' <<< "$out")
    echo "round $round $name tps=$tps ignored_errors=$errors"
  done
done
curl -s 127.0.0.1:29644/pools
echo
