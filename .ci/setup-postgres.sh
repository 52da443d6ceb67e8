#!/usr/bin/env bash
# Prepares the local PostgreSQL server for the protocol-postgres integration tests.
#
# Run as root on a machine where a Debian-packaged PostgreSQL cluster ("main") serves 127.0.0.1:5432
# with trust authentication for `postgres`. Safe to run any number of times: every step checks first
# and converges to the same state. What it does:
#
#   1. starts the cluster when it is down;
#   2. makes a self-signed CA and a server certificate for 127.0.0.1/localhost (kept while valid),
#      plus a second, unrelated CA that tests use as "the wrong CA", in $TLS_DIR (default
#      /etc/connguard-it/postgres: ca.crt, server.crt, server.key, wrong-ca.crt);
#   3. turns on ssl with those files (ALTER SYSTEM; reload);
#   4. makes sure max_connections leaves room for the 200-session pool test (restart only if lower);
#   5. creates the test roles with fixed passwords and the pg_hba.conf lines that make them use their
#      method, placed before the trust lines:
#        cg_scram / cg_scram_pw   scram-sha-256
#        cg_md5   / cg_md5_pw     md5 (the password is stored as an md5 hash)
#        cg_tls                   trust, but only over TLS (hostnossl → reject)
#        cg_repl                  replication connections (trust)
#   6. reloads and checks every role can log in the way the tests will.
set -euo pipefail

TLS_DIR=${CONNGUARD_PG_TLS_DIR:-/etc/connguard-it/postgres}
MIN_CONNECTIONS=${CONNGUARD_PG_MIN_CONNECTIONS:-400}
PG_VERSION=${PG_VERSION:-$(ls /etc/postgresql | sort -V | tail -n 1)}
CLUSTER=main
CONF_DIR=/etc/postgresql/$PG_VERSION/$CLUSTER
HBA=$CONF_DIR/pg_hba.conf
BEGIN_MARK='# BEGIN connguard integration tests (.ci/setup-postgres.sh)'
END_MARK='# END connguard integration tests'

log() { echo "setup-postgres: $*"; }

as_postgres() { runuser -u postgres -- "$@"; }

sql() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -At -d postgres "$@"; }

cluster_online() { pg_lsclusters -h "$PG_VERSION" "$CLUSTER" 2>/dev/null | grep -q online; }

wait_ready() {
    for _ in $(seq 1 60); do
        if as_postgres pg_isready -q -h 127.0.0.1 -p 5432; then return 0; fi
        sleep 0.5
    done
    log "PostgreSQL did not become ready on 127.0.0.1:5432"; exit 1
}

# ---------------------------------------------------------------- 1. running
if ! cluster_online; then
    log "starting cluster $PG_VERSION/$CLUSTER"
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$CLUSTER" start
fi
wait_ready

# ---------------------------------------------------------------- 2. certificates
mkdir -p "$TLS_DIR"
chmod 755 "$TLS_DIR"

certs_valid() {
    [ -s "$TLS_DIR/ca.crt" ] && [ -s "$TLS_DIR/server.crt" ] && [ -s "$TLS_DIR/server.key" ] \
        && [ -s "$TLS_DIR/wrong-ca.crt" ] \
        && openssl verify -CAfile "$TLS_DIR/ca.crt" "$TLS_DIR/server.crt" >/dev/null 2>&1 \
        && openssl x509 -checkend 86400 -noout -in "$TLS_DIR/server.crt" >/dev/null 2>&1 \
        && openssl x509 -noout -ext subjectAltName -in "$TLS_DIR/server.crt" 2>/dev/null | grep -q 'IP Address:127.0.0.1'
}

if ! certs_valid; then
    log "creating CA and server certificate in $TLS_DIR"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=connguard test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=connguard wrong CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$work/wrong-ca.key" -out "$work/wrong-ca.crt" 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
        -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
        > "$work/server.ext"
    openssl x509 -req -sha256 -days 3650 -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
        -CAcreateserial -extfile "$work/server.ext" -out "$work/server.crt" 2>/dev/null
    install -m 644 -o root -g root "$work/ca.crt" "$TLS_DIR/ca.crt"
    install -m 644 -o root -g root "$work/wrong-ca.crt" "$TLS_DIR/wrong-ca.crt"
    install -m 644 -o postgres -g postgres "$work/server.crt" "$TLS_DIR/server.crt"
    install -m 600 -o postgres -g postgres "$work/server.key" "$TLS_DIR/server.key"
fi

# ---------------------------------------------------------------- 3. ssl = on
setting() { sql -c "SELECT setting FROM pg_settings WHERE name = '$1'"; }

if [ "$(setting ssl)" != on ] || [ "$(setting ssl_cert_file)" != "$TLS_DIR/server.crt" ] \
        || [ "$(setting ssl_key_file)" != "$TLS_DIR/server.key" ]; then
    log "enabling ssl"
    sql -c "ALTER SYSTEM SET ssl_cert_file = '$TLS_DIR/server.crt'" \
        -c "ALTER SYSTEM SET ssl_key_file = '$TLS_DIR/server.key'" \
        -c "ALTER SYSTEM SET ssl = on" \
        -c "SELECT pg_reload_conf()" >/dev/null
    sleep 1
fi

# ---------------------------------------------------------------- 4. max_connections
if [ "$(setting max_connections)" -lt "$MIN_CONNECTIONS" ]; then
    log "raising max_connections to $MIN_CONNECTIONS (needs a restart)"
    sql -c "ALTER SYSTEM SET max_connections = $MIN_CONNECTIONS" >/dev/null
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$CLUSTER" restart
    wait_ready
fi

# ---------------------------------------------------------------- 5. roles and pg_hba.conf
sql <<'SQL'
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['cg_scram', 'cg_md5', 'cg_tls', 'cg_repl'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I LOGIN', r);
    END IF;
  END LOOP;
END $$;
ALTER ROLE cg_repl LOGIN REPLICATION;
SET password_encryption = 'scram-sha-256';
ALTER ROLE cg_scram PASSWORD 'cg_scram_pw';
SET password_encryption = 'md5';
ALTER ROLE cg_md5 PASSWORD 'cg_md5_pw';
SQL
if [ "$(sql -c "SELECT count(*) FROM pg_database WHERE datname = 'test'")" = 0 ]; then
    sql -c "CREATE DATABASE test" >/dev/null
fi

hba_block() {
    cat <<EOF
$BEGIN_MARK
host      all          cg_scram  127.0.0.1/32  scram-sha-256
host      all          cg_md5    127.0.0.1/32  md5
hostssl   all          cg_tls    127.0.0.1/32  trust
hostnossl all          cg_tls    127.0.0.1/32  reject
host      replication  cg_repl   127.0.0.1/32  trust
$END_MARK
EOF
}

current=$(mktemp)
wanted=$(mktemp)
cp "$HBA" "$current"
{
    hba_block
    # Everything else, without an older copy of our block.
    awk -v b="$BEGIN_MARK" -v e="$END_MARK" '$0 == b {skip = 1} !skip {print} $0 == e {skip = 0}' "$current"
} > "$wanted"
if ! cmp -s "$current" "$wanted"; then
    log "writing the test lines at the top of $HBA"
    cat "$wanted" > "$HBA"   # keeps the file's owner and mode
fi
rm -f "$current" "$wanted"

# ---------------------------------------------------------------- 6. reload and check
sql -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
errors=$(sql -c "SELECT line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL")
if [ -n "$errors" ]; then
    log "pg_hba.conf has errors: $errors"; exit 1
fi

check() {
    local what=$1; shift
    if ! out=$("$@" 2>&1); then
        log "check failed: $what: $out"; exit 1
    fi
}
check "cg_scram over scram-sha-256" env PGPASSWORD=cg_scram_pw \
    psql -X -At "host=127.0.0.1 port=5432 dbname=test user=cg_scram sslmode=disable" -c "SELECT 1"
check "cg_md5 over md5" env PGPASSWORD=cg_md5_pw \
    psql -X -At "host=127.0.0.1 port=5432 dbname=test user=cg_md5 sslmode=disable" -c "SELECT 1"
check "cg_tls with verify-full" \
    psql -X -At "host=127.0.0.1 port=5432 dbname=test user=cg_tls sslmode=verify-full sslrootcert=$TLS_DIR/ca.crt" \
    -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
check "cg_repl replication connection" \
    psql -X -At "host=127.0.0.1 port=5432 dbname=test user=cg_repl replication=database sslmode=disable" \
    -c "IDENTIFY_SYSTEM"
if env PGPASSWORD=wrong psql -X -At "host=127.0.0.1 port=5432 dbname=test user=cg_scram sslmode=disable" \
        -c "SELECT 1" >/dev/null 2>&1; then
    log "check failed: cg_scram accepted a wrong password (pg_hba.conf order?)"; exit 1
fi
log "ready: ssl on (CA $TLS_DIR/ca.crt), max_connections $(setting max_connections), roles cg_scram cg_md5 cg_tls cg_repl"
